use actix_typed_session::SessionData;

#[derive(SessionData)]
#[session(name = "cart")]
#[session(name = "basket")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
