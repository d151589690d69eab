//! A request's sessions, kept in the request itself.
//!
//! When a [`SessionMiddleware`](crate::SessionMiddleware) is called it adds its [`Marker`] to the
//! request's app data (one container per worker, pushed onto the request: no allocation while the
//! request's app data fits inline, which holds up to four containers). When
//! a session is first asked for, a [`Registry`] for that middleware goes into the request's
//! extensions. Everything that can see the request finds both: extractors, guards, middlewares
//! inside the session middleware (also one that runs the rest of the request on a task of its
//! own) and, once the inner services answered, middlewares outside it.
//!
//! Invariants:
//! - Handles ([`Sessions`](crate::Sessions), [`Session`](crate::Session)) hold the registry,
//!   never an `HttpRequest`: actix-web needs its request unshared while it routes and panics
//!   otherwise.
//! - The middleware saves what its registry holds when the inner services answer; a session
//!   opened or changed after that is not saved.
//! - Nested session middlewares: the innermost one's marker is found first, so extractors use
//!   its configuration; each middleware service saves only its own registry (by marker id).
//!   Markers are never taken off the request, so a middleware between two session middlewares
//!   that asks for sessions after the inner one answered finds the inner one's (already saved):
//!   it must take its handle before `next.call`.
//! - Making a registry borrows the request's extensions mutably: whoever asks for sessions
//!   first must not hold them borrowed (`RefCell` rules, as for actix-web's own extensions).

use std::{
    cell::{Ref, RefCell, RefMut},
    net::SocketAddr,
    rc::Rc,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use actix_web::{
    dev::Extensions,
    http::header::{HeaderMap, HeaderValue, COOKIE, USER_AGENT},
};

use crate::{config::Config, device::Client, Session};

/// The sessions a request opened, in order: inline for the usual one or two.
pub(crate) type Opened = smallvec::SmallVec<[Session; 2]>;

/// What a session middleware's service adds to each request's app data: its configuration, and
/// an id that tells this service from any other, clones of one middleware included (wrapped at
/// both App and scope level, say, the inner one owns the request's sessions).
pub(crate) struct Marker {
    pub(crate) config: Arc<Config>,
    pub(crate) id: u64,
}

impl Marker {
    pub(crate) fn new(config: Arc<Config>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self {
            config,
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// The registries of the session middlewares a request passed through that were asked for
/// sessions (one, unless session middlewares are nested).
#[derive(Default)]
struct Registries(smallvec::SmallVec<[Rc<Registry>; 1]>);

impl Registries {
    /// The registry of the middleware service with marker `id`.
    fn of(&self, id: u64) -> Option<&Rc<Registry>> {
        self.0.iter().find(|r| r.id == id)
    }
}

/// One request's share of a session middleware: its configuration, the request's `Cookie`
/// headers and the sessions the request opened.
pub(crate) struct Registry {
    pub(crate) config: Arc<Config>,
    /// The [`Marker::id`] of the middleware service it belongs to.
    id: u64,
    /// The request's `Cookie` headers, taken when the registry is made; `HeaderValue`s share
    /// their bytes with the request.
    cookies: smallvec::SmallVec<[HeaderValue; 1]>,
    /// The request's `User-Agent`, and its peer address when the middleware records addresses
    /// (see [`crate::device`]).
    client: Client,
    opened: RefCell<Opened>,
}

impl Registry {
    /// The registry of the innermost session middleware serving a request, made the first time
    /// it is asked for: `marker` from the request's app data, `extensions` and `headers` the
    /// request's, `peer` its connection's peer address.
    pub(crate) fn find<'a>(
        marker: Option<&Marker>,
        extensions: impl FnOnce() -> Ref<'a, Extensions>,
        extensions_mut: impl FnOnce() -> RefMut<'a, Extensions>,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Option<Rc<Self>> {
        let marker = marker?;
        // Read first: once the registry exists, a caller holding the extensions borrowed (a
        // guard reading them, say) is no problem. Making it borrows them mutably.
        let found = extensions()
            .get::<Registries>()
            .and_then(|r| r.of(marker.id))
            .cloned();
        if found.is_some() {
            return found;
        }
        let registry = Rc::new(Self {
            config: marker.config.clone(),
            id: marker.id,
            cookies: headers.get_all(COOKIE).cloned().collect(),
            client: Client {
                user_agent: headers.get(USER_AGENT).cloned(),
                address: peer
                    .filter(|_| marker.config.record_address)
                    .map(|p| p.ip()),
            },
            opened: RefCell::default(),
        });
        let mut extensions = extensions_mut();
        if extensions.get::<Registries>().is_none() {
            extensions.insert(Registries::default());
        }
        let registries = extensions.get_mut::<Registries>().expect("inserted above");
        registries.0.push(registry.clone());
        Some(registry)
    }

    /// The registry made for the request whose extensions these are for the middleware service
    /// with marker `id`, if a session was asked for.
    pub(crate) fn made(extensions: &Extensions, id: u64) -> Option<Rc<Self>> {
        extensions.get::<Registries>()?.of(id).cloned()
    }

    /// The request's `Cookie` header values, in order.
    pub(crate) fn cookies(&self) -> &[HeaderValue] {
        &self.cookies
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
        session.state().client = self.client.clone();
        self.opened.borrow_mut().push(session.clone());
        session
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use actix_web::{test::TestRequest, HttpMessage as _, HttpRequest};

    use super::*;
    use crate::{Key, MemoryStore, SessionMiddleware};

    fn config() -> Arc<Config> {
        config_with(false)
    }

    fn config_with(record_address: bool) -> Arc<Config> {
        SessionMiddleware::builder(Key::generate())
            .backend("memory", MemoryStore::default())
            .record_client_address(record_address)
            .build()
            .unwrap()
            .config()
            .clone()
    }

    fn find(marker: Option<&Marker>, req: &HttpRequest) -> Option<Rc<Registry>> {
        Registry::find(
            marker,
            || req.extensions(),
            || req.extensions_mut(),
            req.headers(),
            req.peer_addr(),
        )
    }

    #[test]
    fn a_registry_is_made_once_per_middleware_and_request_with_its_cookies() {
        let req = TestRequest::default()
            .insert_header((COOKIE, "a=1"))
            .to_http_request();
        assert!(find(None, &req).is_none(), "no middleware, no registry");
        let config = config();
        // Two services of one middleware: one configuration, two markers.
        let (outer, inner) = (Marker::new(config.clone()), Marker::new(config));
        assert!(Registry::made(&req.extensions(), outer.id).is_none());
        let first = find(Some(&outer), &req).expect("made");
        assert_eq!(first.cookies(), [HeaderValue::from_static("a=1")]);
        let again = find(Some(&outer), &req).expect("found");
        assert!(Rc::ptr_eq(&first, &again));
        let other = find(Some(&inner), &req).expect("made");
        assert!(!Rc::ptr_eq(&first, &other), "one registry per middleware");
        let made = Registry::made(&req.extensions(), outer.id).expect("made");
        assert!(Rc::ptr_eq(&first, &made));
        // Found while the caller holds the extensions borrowed.
        let _held = req.extensions();
        assert!(find(Some(&outer), &req).is_some());
    }

    #[test]
    fn a_registry_keeps_the_user_agent_and_the_peer_address_only_when_recorded() {
        let req = || {
            TestRequest::default()
                .insert_header((USER_AGENT, "Firefox/1.0"))
                .peer_addr("192.0.2.1:1234".parse().unwrap())
                .to_http_request()
        };
        let (plain, recording) = (req(), req());
        let registry = find(Some(&Marker::new(config())), &plain).expect("made");
        assert_eq!(
            registry.client.user_agent,
            Some(HeaderValue::from_static("Firefox/1.0"))
        );
        assert_eq!(registry.client.address, None, "not recorded by default");
        let registry = find(Some(&Marker::new(config_with(true))), &recording).expect("made");
        assert_eq!(registry.client.address, Some([192, 0, 2, 1].into()));
    }
}
