use actix_typed_session::SessionData;

#[derive(SessionData)]
#[session(extractor = "my cart")]
struct Cart {
    items: Vec<String>,
}

#[derive(SessionData)]
#[session(extractor = some::Path)]
struct Prefs {
    theme: Option<String>,
}

fn main() {}
