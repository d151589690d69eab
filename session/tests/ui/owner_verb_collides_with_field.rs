use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Login {
    #[session(owner)]
    user: Option<String>,
    owned_sessions: Vec<String>,
}

// Without an owner field the name is free.
#[derive(SessionData)]
struct Devices {
    owned_sessions: Vec<String>,
}

fn main() {}
