use actix_typed_session::SessionData;

struct Coupon {
    code: String,
}

#[derive(SessionData)]
struct Cart {
    coupon: Option<Coupon>,
}

fn main() {}
