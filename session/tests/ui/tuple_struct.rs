use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Cart(Vec<String>);

fn main() {}
