use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Cart;

fn main() {}
