use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(key = "i")]
    items: Vec<String>,
}

fn main() {}
