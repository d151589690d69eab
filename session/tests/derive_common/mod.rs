//! A cookie-keeping client for the derive tests.
#![allow(dead_code)]

use std::{cell::RefCell, collections::BTreeMap};

use actix_web::{
    body::MessageBody,
    cookie::Cookie,
    dev::{Service, ServiceResponse},
    http::{header, StatusCode},
    test,
};

/// A response and the cookies it set.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
    pub set_cookies: Vec<Cookie<'static>>,
}

/// The cookie name a session `name` gets with the default attributes (Secure, Path `/`, no
/// Domain): `__Host-{name}`.
pub fn host(name: &str) -> String {
    format!("__Host-{name}")
}

impl Reply {
    /// The cookie of session `name` (under its `__Host-` name or its plain one).
    pub fn cookie(&self, name: &str) -> Option<&Cookie<'static>> {
        let host = host(name);
        self.set_cookies
            .iter()
            .find(|c| c.name() == name || c.name() == host)
    }
}

/// Sends requests to an app and keeps its cookies, like a browser.
pub struct Client<S> {
    app: S,
    pub jar: RefCell<BTreeMap<String, String>>,
}

impl<S, B> Client<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    pub fn new(app: S) -> Self {
        Self {
            app,
            jar: RefCell::new(BTreeMap::new()),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(test::TestRequest::get().uri(path)).await
    }

    /// Sends `req` with the jar's cookies and keeps the cookies of the response.
    pub async fn send(&self, req: test::TestRequest) -> Reply {
        let cookies = self.cookie_header();
        let req = if cookies.is_empty() {
            req
        } else {
            req.insert_header((header::COOKIE, cookies))
        };
        let reply = self.send_raw(req).await;
        let mut jar = self.jar.borrow_mut();
        for cookie in &reply.set_cookies {
            if cookie
                .max_age()
                .is_some_and(|a| a.is_zero() || a.is_negative())
            {
                jar.remove(cookie.name());
            } else {
                jar.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
        reply
    }

    /// The jar's cookie of session `name` (under its `__Host-` name or its plain one).
    pub fn value(&self, name: &str) -> Option<String> {
        let jar = self.jar.borrow();
        jar.get(&host(name)).or_else(|| jar.get(name)).cloned()
    }

    /// Sends `req` with only the cookie of session `name` (its `__Host-` name) set to `value`;
    /// the jar is neither used nor updated.
    pub async fn send_with_cookie(&self, req: test::TestRequest, name: &str, value: &str) -> Reply {
        let name = host(name);
        self.send_raw(req.insert_header((header::COOKIE, format!("{name}={value}"))))
            .await
    }

    async fn send_raw(&self, req: test::TestRequest) -> Reply {
        let res = test::call_service(&self.app, req.to_request()).await;
        let status = res.status();
        let set_cookies: Vec<Cookie<'static>> = res
            .headers()
            .get_all(header::SET_COOKIE)
            .map(|v| Cookie::parse_encoded(v.to_str().unwrap().to_owned()).unwrap())
            .collect();
        let body = test::read_body(res).await;
        Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            set_cookies,
        }
    }

    pub fn cookie_header(&self) -> String {
        let jar = self.jar.borrow();
        let pairs: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join("; ")
    }
}
