use actix_typed_session::SessionData;

fn welcome() -> Vec<String> {
    vec!["welcome".to_owned()]
}

#[derive(SessionData)]
struct Flash {
    #[session(flash, default = "welcome")]
    notices: Vec<String>,
}

fn main() {}
