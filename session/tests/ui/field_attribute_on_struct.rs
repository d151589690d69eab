use actix_typed_session::SessionData;

#[derive(SessionData)]
#[session(rename = "basket")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
