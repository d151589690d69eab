//! Metrics through the `metrics` facade (feature `metrics`): what happened to sessions, store
//! errors and store latency, labelled by backend and session name only (never an id or owner).
//! Without the feature every function here is an empty inline function.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `session_loaded_total` | counter | `backend`, `session` |
//! | `session_created_total` | counter | `backend`, `session` |
//! | `session_saved_total` | counter | `backend`, `session` |
//! | `session_renewed_total` | counter | `backend`, `session` |
//! | `session_purged_total` | counter | `backend`, `session` |
//! | `session_refused_too_large_total` | counter | `backend`, `session` |
//! | `session_conflicts_avoided_total` | counter | `backend`, `session` |
//! | `session_store_errors_total` | counter | `backend`, `session`, `operation` |
//! | `session_store_seconds` | histogram | `backend`, `session`, `operation` |

use crate::config::Spec;

/// The labels of one session's metrics, built once per session configuration.
#[cfg(feature = "metrics")]
pub(crate) type Labels = Vec<metrics::Label>;
/// Nothing to label without the feature.
#[cfg(not(feature = "metrics"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Labels;

#[cfg(feature = "metrics")]
pub(crate) fn labels(session: &str, backend: &str) -> Labels {
    let shared = |s: &str| metrics::SharedString::from(std::sync::Arc::<str>::from(s));
    vec![
        metrics::Label::new("backend", shared(backend)),
        metrics::Label::new("session", shared(session)),
    ]
}

#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn labels(_session: &str, _backend: &str) -> Labels {
    Labels
}

/// Which session event to count.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Loaded,
    Created,
    Saved,
    Renewed,
    Purged,
    TooLarge,
    ConflictAvoided,
}

#[cfg(feature = "metrics")]
impl Event {
    fn name(self) -> &'static str {
        match self {
            Self::Loaded => "session_loaded_total",
            Self::Created => "session_created_total",
            Self::Saved => "session_saved_total",
            Self::Renewed => "session_renewed_total",
            Self::Purged => "session_purged_total",
            Self::TooLarge => "session_refused_too_large_total",
            Self::ConflictAvoided => "session_conflicts_avoided_total",
        }
    }
}

/// Counts one event of `spec`'s session.
#[inline]
pub(crate) fn count(spec: &Spec, event: Event) {
    #[cfg(feature = "metrics")]
    metrics::counter!(event.name(), spec.labels.iter()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (spec, event);
}

/// Runs one store operation, recording its latency and, if it fails, the error.
#[inline]
pub(crate) async fn timed<T>(
    spec: &Spec,
    operation: &'static str,
    op: impl std::future::Future<Output = Result<T, crate::StoreError>>,
) -> Result<T, crate::StoreError> {
    #[cfg(feature = "metrics")]
    {
        let started = std::time::Instant::now();
        let result = op.await;
        let mut labels = spec.labels.clone();
        labels.push(metrics::Label::from_static_parts("operation", operation));
        metrics::histogram!("session_store_seconds", labels.iter())
            .record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!("session_store_errors_total", labels).increment(1);
        }
        result
    }
    #[cfg(not(feature = "metrics"))]
    {
        let _ = (spec, operation);
        op.await
    }
}

/// Detects, within one process, change sets that merged with another request's write to the
/// same session: the writes a whole-session overwrite would have lost.
///
/// Every server-side write of a change set takes a number from one sequence and leaves it in a
/// slot picked by the session's storage key; a request that finds, at its own write, a number
/// newer than the one it saw when it loaded the session knows another write landed in between.
/// Two sessions sharing a slot and writing at the same moment can be counted once too often
/// (65,536 slots); writes from other processes are not seen. An estimate, for a dashboard.
#[cfg(feature = "metrics")]
pub(crate) struct WriteClock {
    sequence: std::sync::atomic::AtomicU64,
    slots: Box<[std::sync::atomic::AtomicU64]>,
}

#[cfg(feature = "metrics")]
impl Default for WriteClock {
    fn default() -> Self {
        Self {
            sequence: std::sync::atomic::AtomicU64::new(0),
            slots: (0..1 << 16)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        }
    }
}

#[cfg(feature = "metrics")]
impl WriteClock {
    /// The sequence number to remember when a session is loaded.
    pub(crate) fn now(&self) -> u64 {
        self.sequence.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records a write of `key`; whether another write landed since `loaded_at`.
    pub(crate) fn wrote(&self, key: &crate::StorageKey, loaded_at: u64) -> bool {
        use std::sync::atomic::Ordering;
        let b = key.as_bytes();
        let slot = &self.slots[usize::from(u16::from_le_bytes([b[0], b[1]]))];
        let mine = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        slot.swap(mine, Ordering::Relaxed) > loaded_at
    }
}

#[cfg(not(feature = "metrics"))]
#[derive(Default)]
pub(crate) struct WriteClock;

#[cfg(not(feature = "metrics"))]
impl WriteClock {
    #[inline(always)]
    pub(crate) fn now(&self) -> u64 {
        0
    }
    #[inline(always)]
    pub(crate) fn wrote(&self, _key: &crate::StorageKey, _loaded_at: u64) -> bool {
        false
    }
}
