use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(backend = "memory")]
    items: Vec<String>,
}

fn main() {}
