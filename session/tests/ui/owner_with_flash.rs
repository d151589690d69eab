use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Login {
    #[session(owner, flash)]
    users: Vec<String>,
}

fn main() {}
