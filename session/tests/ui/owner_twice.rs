use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Login {
    #[session(owner)]
    user_id: Option<u64>,
    #[session(owner)]
    email: Option<String>,
}

fn main() {}
