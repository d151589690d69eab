use actix_typed_session::SessionData;
use actix_web::HttpResponse;

#[derive(SessionData)]
#[session(name = "my cart")]
struct Cart {
    items: Vec<String>,
    #[session(flash)]
    notices: Vec<String>,
}

// The accessor and its methods still exist, so only the attribute is reported.
async fn add(cart: CartSession) -> actix_web::Result<HttpResponse> {
    let mut items = cart.items()?;
    items.push("book".to_owned());
    cart.set_items(items)?;
    cart.push_notices("added".to_owned())?;
    let _ = cart.load()?;
    Ok(HttpResponse::Ok().finish())
}

fn main() {
    let _ = actix_web::web::get().to(add);
}
