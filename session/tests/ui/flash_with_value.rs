use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Flash {
    #[session(flash = true)]
    notices: Vec<String>,
}

fn main() {}
