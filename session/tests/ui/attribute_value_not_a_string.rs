use actix_typed_session::SessionData;

#[derive(SessionData)]
#[session(name = cart)]
struct Cart {
    items: Vec<String>,
}

fn main() {}
