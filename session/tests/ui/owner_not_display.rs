use actix_typed_session::SessionData;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Default)]
struct UserId(u64);

#[derive(SessionData)]
struct Login {
    #[session(owner)]
    user: Option<UserId>,
}

#[derive(SessionData)]
struct Badge {
    #[session(owner)]
    user: UserId,
}

fn main() {}
