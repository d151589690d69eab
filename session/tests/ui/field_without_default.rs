use actix_typed_session::SessionData;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Currency(String);

#[derive(SessionData)]
struct Prefs {
    currency: Currency,
}

fn main() {}
