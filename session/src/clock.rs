//! Where the middleware reads the time.

use std::{fmt::Debug, time::SystemTime};

/// A source of the current time for expiry decisions.
///
/// The middleware uses [`SystemClock`] unless told otherwise. Tests plug in a clock they can move
/// forward, so idle and absolute timeouts can be checked without sleeping.
///
/// ```
/// use std::{sync::atomic::{AtomicU64, Ordering}, time::{Duration, SystemTime}};
/// use actix_typed_session::Clock;
///
/// /// Real time plus an offset that tests can advance.
/// #[derive(Debug, Default)]
/// struct TestClock(AtomicU64);
///
/// impl Clock for TestClock {
///     fn now(&self) -> SystemTime {
///         SystemTime::now() + Duration::from_secs(self.0.load(Ordering::Relaxed))
///     }
/// }
/// ```
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
