use actix_typed_session::SessionData;

#[derive(SessionData)]
enum Cart {
    Empty,
    Full(Vec<String>),
}

fn main() {}
