use actix_typed_session::SessionData;

#[derive(SessionData)]
struct Login {
    uid: Option<u64>,
    #[session(rename = "uid")]
    user_id: Option<u64>,
}

fn main() {}
