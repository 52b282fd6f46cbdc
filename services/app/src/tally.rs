//! Audit bookkeeping shared by every front door: the mark that says a request has its record,
//! and the tally that keeps an anonymous flood from filling the audit log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use vellum_audit::AuditEvent;

/// Set on a request when a service call built its audit record; the request middleware writes
/// a generic record for any request that ends without one, so every request is recorded.
#[derive(Debug, Default)]
pub struct RequestAudit {
    recorded: AtomicBool,
    principal: OnceLock<String>,
}

impl RequestAudit {
    /// A record of this request exists (or its failure to be written failed the request).
    pub fn mark_recorded(&self) {
        self.recorded.store(true, Ordering::Release);
    }

    pub fn is_recorded(&self) -> bool {
        self.recorded.load(Ordering::Acquire)
    }

    /// Who was authenticated on this request, for the generic record.
    pub fn set_principal(&self, name: &str) {
        let _ = self.principal.set(name.to_string());
    }

    pub fn principal(&self) -> Option<String> {
        self.principal.get().cloned()
    }
}

/// A shared handle to a request's [`RequestAudit`].
pub type RequestAuditHandle = Arc<RequestAudit>;

/// Records, per client address and window, of requests nobody authenticated: failed
/// authentications, failed logins, probes of public or unknown paths. The first
/// [`TallyConfig::individual`] in a window are written one by one (the first ones are the
/// evidence); after that they are counted, and one summary record per address says how many
/// were left out. So an anonymous flood cannot fill the disk through the audit log (which would
/// stop the whole service: the log fails closed), and nothing goes unrecorded.
#[derive(Debug)]
pub struct FailureTally {
    config: TallyConfig,
    state: Mutex<TallyState>,
}

/// Limits of a [`FailureTally`].
#[derive(Debug, Clone)]
pub struct TallyConfig {
    /// Records written one by one per address and window.
    pub individual: u32,
    /// Length of a window.
    pub window: Duration,
    /// Addresses tracked at once; past this, new addresses share one overflow bucket (`*`),
    /// so a spray of addresses cannot grow the map.
    pub max_addresses: usize,
}

impl Default for TallyConfig {
    fn default() -> Self {
        TallyConfig {
            individual: 20,
            window: Duration::from_secs(60),
            max_addresses: 10_000,
        }
    }
}

#[derive(Debug, Default)]
struct TallyState {
    windows: HashMap<String, Window>,
    last_sweep: Option<Instant>,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    opened_at: SystemTime,
    written: u32,
    suppressed: u64,
}

/// What to do with one unauthenticated event.
#[derive(Debug)]
pub struct Admission {
    /// Write this event's own record.
    pub write: bool,
    /// Summaries of windows that have closed, to write now.
    pub summaries: Vec<AuditEvent>,
}

/// The bucket addresses share once [`TallyConfig::max_addresses`] are tracked.
pub const OVERFLOW_BUCKET: &str = "*";

/// The action of a summary record.
pub const SUPPRESSED_ACTION: &str = "unauthenticated.suppressed";

impl FailureTally {
    pub fn new(config: TallyConfig) -> FailureTally {
        FailureTally {
            config,
            state: Mutex::new(TallyState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TallyState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one event from `address`: whether to write its own record, and the summaries due.
    pub fn admit(&self, address: &str) -> Admission {
        self.admit_at(address, Instant::now())
    }

    pub(crate) fn admit_at(&self, address: &str, now: Instant) -> Admission {
        let mut state = self.lock();
        let mut summaries = Vec::new();
        // Closed windows are swept at most once a second (and on the next event of their
        // address): summaries come late by at most that, or at shutdown ([`Self::flush`]).
        let sweep_due = state
            .last_sweep
            .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1));
        if sweep_due {
            state.last_sweep = Some(now);
            let window = self.config.window;
            let closed: Vec<String> = state
                .windows
                .iter()
                .filter(|(_, w)| now.duration_since(w.opened) >= window)
                .map(|(key, _)| key.clone())
                .collect();
            for key in closed {
                if let Some(w) = state.windows.remove(&key) {
                    summaries.extend(summary(&key, &w, window));
                }
            }
        }
        let key = if state.windows.contains_key(address)
            || state.windows.len() < self.config.max_addresses
        {
            address.to_string()
        } else {
            OVERFLOW_BUCKET.to_string()
        };
        let window = state.windows.entry(key).or_insert_with(|| Window {
            opened: now,
            opened_at: SystemTime::now(),
            written: 0,
            suppressed: 0,
        });
        let write = if window.written < self.config.individual {
            window.written += 1;
            true
        } else {
            window.suppressed += 1;
            false
        };
        Admission { write, summaries }
    }

    /// Summaries of every window with events left out (at shutdown), emptying the tally.
    pub fn flush(&self) -> Vec<AuditEvent> {
        let mut state = self.lock();
        let window = self.config.window;
        state
            .windows
            .drain()
            .filter_map(|(key, w)| summary(&key, &w, window))
            .collect()
    }
}

fn summary(address: &str, window: &Window, length: Duration) -> Option<AuditEvent> {
    (window.suppressed > 0).then(|| {
        let since = window
            .opened_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        AuditEvent::new(SUPPRESSED_ACTION, "denied")
            .address(address.to_string())
            .detail("suppressed", window.suppressed.to_string())
            .detail("written", window.written.to_string())
            .detail("window_start_unix", since.to_string())
            .detail("window_seconds", length.as_secs().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_counted_after_the_first_records() {
        let tally = FailureTally::new(TallyConfig {
            individual: 3,
            window: Duration::from_secs(60),
            max_addresses: 2,
        });
        let start = Instant::now();
        let written = (0..100)
            .filter(|_| tally.admit_at("192.0.2.1", start).write)
            .count();
        assert_eq!(written, 3);
        // Two more addresses: the second goes to the overflow bucket.
        assert!(tally.admit_at("192.0.2.2", start).write);
        assert!(tally.admit_at("192.0.2.3", start).write);
        // The window closes: the next event brings the summary of the first address.
        let later = start + Duration::from_secs(61);
        let admission = tally.admit_at("192.0.2.1", later);
        assert!(admission.write, "a new window starts with records");
        assert_eq!(admission.summaries.len(), 1);
        let event = &admission.summaries[0];
        assert_eq!(event.action, SUPPRESSED_ACTION);
        assert_eq!(event.address.as_deref(), Some("192.0.2.1"));
        assert_eq!(
            event.detail.get("suppressed").map(String::as_str),
            Some("97")
        );
        for _ in 0..5 {
            tally.admit_at("192.0.2.1", later);
        }
        let flushed = tally.flush();
        assert_eq!(flushed.len(), 1);
        assert_eq!(
            flushed[0].detail.get("suppressed").map(String::as_str),
            Some("3")
        );
    }
}
