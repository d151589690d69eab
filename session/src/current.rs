//! How extractors find the session middleware around them: the request's frame.
//!
//! A frame is one request's share of a [`SessionMiddleware`](crate::SessionMiddleware): its
//! configuration and, once a handler asks for a session, the registry of the sessions the request
//! opened. The middleware's future owns the frame and makes it this thread's current one while it
//! calls or polls the services inside it, then takes it back. Extractors and the handler run
//! inside that poll, so they find the frame of the innermost session middleware around them;
//! nested middlewares stack their frames and restore the outer one when they return.
//!
//! Nothing is allocated or inserted into the request for a route that never opens a session
//! (the request's extensions would cost a map and a box per request). The price: a service
//! inside the middleware that runs the rest of the request as a separate task leaves its
//! extractors without a frame. A frame serves only the request it was made for: an extractor
//! running for another request (say, one whose handler polls a future made by a different
//! request) finds no frame.

use std::{cell::Cell, rc::Rc, sync::Arc};

use actix_web::{dev::RequestHead, HttpRequest};

use crate::{config::Config, extract::Registry};

/// One request's share of a session middleware.
pub(crate) struct Frame {
    /// The address of the request's head, which stays put for the request's lifetime: tells
    /// the request this frame serves from any other.
    request: usize,
    pub(crate) config: Arc<Config>,
    /// Made when a session is first asked for.
    pub(crate) registry: Option<Rc<Registry>>,
}

impl Frame {
    pub(crate) fn new(head: &RequestHead, config: Arc<Config>) -> Self {
        Self {
            request: address(head),
            config,
            registry: None,
        }
    }
}

fn address(head: &RequestHead) -> usize {
    std::ptr::from_ref(head) as usize
}

thread_local! {
    static CURRENT: Cell<Option<Frame>> = const { Cell::new(None) };
}

/// Keeps a frame current until dropped, then gives it back to its owner and makes the frame
/// that was current before current again (also when the code inside panics).
pub(crate) struct Entered<'a> {
    /// The owner's slot, holding the outer frame while the owner's is current.
    owner: &'a Cell<Option<Frame>>,
}

/// Makes the frame in `owner` (if any) this thread's current frame while the guard lives.
pub(crate) fn enter(owner: &mut Option<Frame>) -> Entered<'_> {
    let owner = Cell::from_mut(owner);
    swap(owner);
    Entered { owner }
}

/// Swaps the current frame with the one in `slot`.
fn swap(slot: &Cell<Option<Frame>>) {
    // The thread-local is gone only while the thread is torn down; nothing is current then.
    let _ = CURRENT.try_with(|current| current.swap(slot));
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        swap(self.owner);
    }
}

/// The configuration and registry of the session middleware serving `req`, the registry made
/// if this is the request's first session; `None` outside of one.
pub(crate) fn registry(req: &HttpRequest) -> Option<(Arc<Config>, Rc<Registry>)> {
    CURRENT
        .try_with(|current| {
            let mut frame = current.take()?;
            let found = (frame.request == address(req.head())).then(|| {
                let registry = frame.registry.get_or_insert_with(Rc::default);
                (frame.config.clone(), registry.clone())
            });
            current.set(Some(frame));
            found
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use actix_web::test::TestRequest;

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
    fn frames_nest_and_the_outer_one_is_back_after_a_panic_inside() {
        let (outer_req, inner_req) = (
            TestRequest::default().to_http_request(),
            TestRequest::default().to_http_request(),
        );
        assert!(registry(&outer_req).is_none(), "a frame outside of any");
        let mut outer = Some(Frame::new(outer_req.head(), config()));
        {
            let _entered = enter(&mut outer);
            let (_, first) = registry(&outer_req).expect("the outer frame");
            let mut inner = Some(Frame::new(inner_req.head(), config()));
            let panicked = catch_unwind(AssertUnwindSafe(|| {
                let _entered = enter(&mut inner);
                assert!(registry(&inner_req).is_some());
                assert!(
                    registry(&outer_req).is_none(),
                    "the inner frame serves its request"
                );
                panic!("inside the inner frame");
            }));
            assert!(panicked.is_err());
            assert!(inner.is_some(), "the inner frame went back to its owner");
            let (_, again) = registry(&outer_req).expect("the outer frame, back");
            assert!(Rc::ptr_eq(&first, &again), "one registry per frame");
            assert!(registry(&inner_req).is_none());
        }
        assert!(
            registry(&outer_req).is_none(),
            "no frame once the owner took it back"
        );
        assert!(outer.expect("given back").registry.is_some());
    }
}
