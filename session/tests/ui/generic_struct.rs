use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Cart<T> {
    items: Vec<T>,
}

fn main() {}
