//! A request's sessions, kept in the request itself.
//!
//! When a [`SessionMiddleware`](crate::SessionMiddleware) is called it puts a [`Registry`] into
//! the request's extensions. Everything that can see the request finds it there: extractors,
//! guards (`GuardContext::req_data`), middlewares inside the session middleware (also one that
//! runs the rest of the request on a task of its own) and, once the inner services answered,
//! middlewares outside it (through `ServiceResponse::request`).
//!
//! Invariants:
//! - Handles ([`Sessions`](crate::Sessions), [`Session`](crate::Session)) hold the registry,
//!   never an `HttpRequest`: actix-web needs its request unshared while it routes and panics
//!   otherwise.
//! - The middleware saves the sessions registered when the inner services answered; a session
//!   opened or changed after that is not saved.
//! - Nested session middlewares: the inner one's registry stands in for the outer one's until the
//!   inner one answered, then the outer one's is back.

use std::{
    cell::{OnceCell, RefCell},
    rc::Rc,
    sync::Arc,
};

use actix_web::{
    dev::Extensions,
    http::header::{HeaderMap, HeaderValue, COOKIE},
};

use crate::{config::Config, Session};

/// The sessions a request opened, in order: inline for the usual one or two.
pub(crate) type Opened = smallvec::SmallVec<[Session; 2]>;

/// One request's share of a session middleware: its configuration, the request's `Cookie`
/// headers and the sessions the request opened.
pub(crate) struct Registry {
    pub(crate) config: Arc<Config>,
    /// Copied from the request when a session is first asked for (a route that never asks
    /// pays nothing); `HeaderValue`s share their bytes with the request.
    cookies: OnceCell<smallvec::SmallVec<[HeaderValue; 1]>>,
    opened: RefCell<Opened>,
}

impl Registry {
    pub(crate) fn new(config: Arc<Config>) -> Self {
        Self {
            config,
            cookies: OnceCell::new(),
            opened: RefCell::default(),
        }
    }

    /// The registry of the innermost session middleware serving the request whose extensions
    /// these are, with the request's `Cookie` headers captured from `headers` if they were not
    /// yet.
    pub(crate) fn find(extensions: &Extensions, headers: &HeaderMap) -> Option<Rc<Self>> {
        let registry = extensions.get::<Rc<Self>>()?;
        registry
            .cookies
            .get_or_init(|| headers.get_all(COOKIE).cloned().collect());
        Some(registry.clone())
    }

    /// The request's `Cookie` header values, in order.
    pub(crate) fn cookies(&self) -> &[HeaderValue] {
        self.cookies.get().map_or(&[], |cookies| cookies.as_slice())
    }

    /// The sessions to save: all opened so far. They stay registered, so that a middleware
    /// outside the session middleware reads them as the handler left them.
    pub(crate) fn opened(&self) -> Opened {
        self.opened.borrow().clone()
    }

    pub(crate) fn opened_count(&self) -> usize {
        self.opened.borrow().len()
    }

    pub(crate) fn get(&self, name: &str) -> Option<Session> {
        self.opened
            .borrow()
            .iter()
            .find(|s| s.name() == name)
            .cloned()
    }

    /// Registers `session` unless a session of its name is already registered (two extractors
    /// of one handler may have loaded it side by side); returns the registered one, so that all
    /// handles share one state.
    pub(crate) fn register(&self, session: Session) -> Session {
        if let Some(open) = self.get(session.name()) {
            return open;
        }
        self.opened.borrow_mut().push(session.clone());
        session
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{test::TestRequest, HttpMessage as _};

    use super::*;
    use crate::{Key, MemoryStore, SessionMiddleware};

    fn config() -> Arc<Config> {
        SessionMiddleware::builder(Key::generate())
            .backend("memory", MemoryStore::default())
            .build()
            .unwrap()
            .config()
            .clone()
    }

    #[test]
    fn a_registry_is_found_through_the_request_and_captures_its_cookies_once() {
        let req = TestRequest::default()
            .insert_header((COOKIE, "a=1"))
            .to_http_request();
        assert!(Registry::find(&req.extensions(), req.headers()).is_none());
        let registry = Rc::new(Registry::new(config()));
        req.extensions_mut().insert(registry.clone());
        let found = Registry::find(&req.extensions(), req.headers()).expect("inserted");
        assert!(Rc::ptr_eq(&registry, &found));
        assert_eq!(found.cookies(), [HeaderValue::from_static("a=1")]);
        let other = HeaderMap::new();
        let again = Registry::find(&req.extensions(), &other).expect("still there");
        assert_eq!(again.cookies().len(), 1, "captured at the first find only");
    }
}
