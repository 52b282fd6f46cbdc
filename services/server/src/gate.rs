//! What happens to a request before and around the service call, kept apart from the handlers:
//! who the client is (the TCP peer, or a forwarded address only from a trusted proxy), whether
//! the request has its audit record, and how unauthenticated noise is counted instead of
//! written record by record.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;
use vellum_audit::AuditEvent;

/// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed (a reverse proxy in front
/// of Vellum). From any other peer those headers are ignored: a client could write anything
/// there.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client's address: the TCP peer, unless the peer is a trusted proxy, in which case
    /// the right-most forwarded address that is not itself a trusted proxy (each proxy appends
    /// the address it saw, so the left part of the list is the client's to invent).
    pub fn client_address(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: Option<&str>,
        forwarded: Option<&str>,
    ) -> String {
        let Some(peer) = peer else {
            return String::new();
        };
        if !self.trusts(peer) {
            return peer.to_string();
        }
        let chain: Vec<IpAddr> = match (forwarded, forwarded_for) {
            (Some(header), _) => forwarded_header_addresses(header),
            (None, Some(header)) => header.split(',').filter_map(parse_address).collect(),
            (None, None) => Vec::new(),
        };
        chain
            .iter()
            .rev()
            .find(|address| !self.trusts(**address))
            .copied()
            .unwrap_or(peer)
            .to_string()
    }
}

/// One address of a forwarded list: `192.0.2.7`, `192.0.2.7:443`, `2001:db8::1`,
/// `[2001:db8::1]:443`, possibly quoted. Anything else (`unknown`, obfuscated ids) is skipped.
fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, _port) = text.rsplit_once(':')?;
    host.parse().ok()
}

/// The `for=` addresses of an RFC 7239 `Forwarded` header, in order.
fn forwarded_header_addresses(header: &str) -> Vec<IpAddr> {
    header
        .split(',')
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("for")
                .then(|| parse_address(value))?
        })
        .collect()
}

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

    fn net(text: &str) -> IpNet {
        text.parse().unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxies = TrustedProxies(vec![net("10.0.0.0/8"), net("::1/128")]);
        // An untrusted peer's header is ignored.
        assert_eq!(
            proxies.client_address(ip("203.0.113.9"), Some("198.51.100.1"), None),
            "203.0.113.9"
        );
        // Through a trusted proxy: the right-most untrusted address.
        assert_eq!(
            proxies.client_address(
                ip("10.0.0.2"),
                Some("1.2.3.4, 198.51.100.7, 10.0.0.5"),
                None
            ),
            "198.51.100.7"
        );
        // RFC 7239, with ports and IPv6.
        assert_eq!(
            proxies.client_address(
                ip("::1"),
                None,
                Some(r#"for="[2001:db8::7]:4711";proto=https, for=10.0.0.9"#)
            ),
            "2001:db8::7"
        );
        // A trusted peer with no header, or only garbage: the peer.
        assert_eq!(
            proxies.client_address(ip("10.0.0.2"), Some("unknown, _hidden"), None),
            "10.0.0.2"
        );
        assert_eq!(
            TrustedProxies::default().client_address(ip("127.0.0.1"), Some("1.2.3.4"), None),
            "127.0.0.1"
        );
    }

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
