use actix_typed_session::SessionData;

#[derive(SessionData)]
#[session]
struct Cart {
    items: Vec<String>,
}

fn main() {}
