use actix_typed_session::SessionData;

#[derive(SessionData)]
#[session(name = "cart", cookie = "c")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
