use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Prefs {
    #[session(default = "1 + 1")]
    lang: String,
}

fn main() {}
