use actix_typed_session::SessionData;

#[derive(SessionData)]
#[session(name = "my cart", colour = "red")]
struct Cart {
    #[session(flash)]
    coupon: String,
    #[session(rename = "coupon", rename = "again")]
    code: Option<String>,
}

fn main() {}
