use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Cart {
    store: Option<String>,
}

fn main() {}
