use actix_typed_session::SessionData;

#[derive(SessionData)]
#[session(name = "my cart")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
