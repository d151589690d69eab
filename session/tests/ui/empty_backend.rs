use actix_typed_session::SessionData;

#[derive(SessionData)]
#[session(backend = "")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
