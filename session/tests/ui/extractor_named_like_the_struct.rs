use actix_typed_session::SessionData;

#[derive(SessionData)]
#[session(extractor = "Cart")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
