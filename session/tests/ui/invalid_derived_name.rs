use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Panier {
    articles: Vec<String>,
}

#[derive(SessionData)]
struct Café {
    tasses: u32,
}

fn main() {}
