use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Flash {
    #[session(flash)]
    notice: Option<String>,
}

fn main() {}
