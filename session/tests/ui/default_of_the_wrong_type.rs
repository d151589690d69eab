use actix_typed_session::SessionData;

fn zero() -> u32 {
    0
}

#[derive(SessionData)]
struct Prefs {
    #[session(default = "zero")]
    lang: String,
}

fn main() {}
