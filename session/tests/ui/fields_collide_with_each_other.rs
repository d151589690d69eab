use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Cart {
    items: Vec<String>,
    set_items: bool,
}

fn main() {}
