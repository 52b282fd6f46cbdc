//! Login throttling, per account and per source address: a few free failures, then each further
//! failure doubles the wait before the next attempt is even checked, up to a cap. A success
//! clears the account's record (not the address's: one good password must not unlock guessing
//! at other accounts from the same place). State is in memory: a restart forgets it, which
//! costs an attacker a restart of the server they cannot cause.
//!
//! Password checks take a slot first ([`Throttle::reserve`]): the attempt is counted as a
//! failure, under the same lock as the check, before argon2 runs, and given back
//! ([`Throttle::release`]) only if the password was right. Checking first and counting after
//! the ~20 ms hash let a burst of concurrent guesses all pass the check.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Limits of [`Throttle`].
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Failures per account before delays start.
    pub account_free_failures: u32,
    /// Failures per address before delays start (several people share an office's address).
    pub address_free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// Failures older than this are forgotten.
    pub window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            account_free_failures: 5,
            address_free_failures: 20,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    blocked_until: Instant,
}

/// Failed-login bookkeeping shared by all requests.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    records: Mutex<HashMap<String, Record>>,
}

/// Entries kept before stale ones are swept (bounds memory under a spray of addresses).
const SWEEP_ABOVE: usize = 10_000;

impl Throttle {
    /// A throttle with `config`.
    pub fn new(config: ThrottleConfig) -> Throttle {
        Throttle {
            config,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses with [`Error::Throttled`] while `account` or `address` must wait.
    pub fn check(&self, account: &str, address: &str) -> Result<()> {
        self.check_at(account, address, Instant::now())
    }

    /// Takes a slot for one password check: refuses with [`Error::Throttled`] while `account`
    /// or `address` must wait, else counts the attempt as a failure, atomically, before the
    /// password is checked. Call [`Throttle::release`] if the password was right; a wrong one
    /// needs nothing more.
    pub fn reserve(&self, account: &str, address: &str) -> Result<()> {
        self.reserve_at(account, address, Instant::now())
    }

    /// A reserved attempt succeeded: the account starts afresh and the address gets its slot
    /// back (its earlier failures stand).
    pub fn release(&self, account: &str, address: &str) {
        let mut records = self.lock();
        records.remove(&account_key(account));
        if let Some(record) = records.get_mut(&address_key(address)) {
            record.failures = record.failures.saturating_sub(1);
            if record.failures <= self.config.address_free_failures {
                record.blocked_until = record.last_failure;
            }
        }
    }

    /// Records a failed login.
    pub fn record_failure(&self, account: &str, address: &str) {
        self.record_failure_at(account, address, Instant::now());
    }

    /// Records a successful login: the account starts afresh.
    pub fn record_success(&self, account: &str) {
        let mut records = self.lock();
        records.remove(&account_key(account));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        // Counters stay meaningful even if a holder panicked.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn check_at(&self, account: &str, address: &str, now: Instant) -> Result<()> {
        let records = self.lock();
        self.check_locked(&records, account, address, now)
    }

    pub(crate) fn reserve_at(&self, account: &str, address: &str, now: Instant) -> Result<()> {
        let mut records = self.lock();
        self.check_locked(&records, account, address, now)?;
        self.count_locked(&mut records, account, address, now);
        Ok(())
    }

    fn check_locked(
        &self,
        records: &HashMap<String, Record>,
        account: &str,
        address: &str,
        now: Instant,
    ) -> Result<()> {
        let wait = [account_key(account), address_key(address)]
            .iter()
            .filter_map(|key| records.get(key))
            .filter(|record| now.duration_since(record.last_failure) < self.config.window)
            .map(|record| record.blocked_until.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Error::Throttled {
                retry_after_seconds: wait.as_secs_f64().ceil() as u64,
            })
        }
    }

    pub(crate) fn record_failure_at(&self, account: &str, address: &str, now: Instant) {
        let mut records = self.lock();
        self.count_locked(&mut records, account, address, now);
    }

    fn count_locked(
        &self,
        records: &mut HashMap<String, Record>,
        account: &str,
        address: &str,
        now: Instant,
    ) {
        if records.len() > SWEEP_ABOVE {
            let window = self.config.window;
            records.retain(|_, record| now.duration_since(record.last_failure) < window);
        }
        for (key, free) in [
            (account_key(account), self.config.account_free_failures),
            (address_key(address), self.config.address_free_failures),
        ] {
            let record = records.entry(key).or_insert(Record {
                failures: 0,
                last_failure: now,
                blocked_until: now,
            });
            if now.duration_since(record.last_failure) >= self.config.window {
                record.failures = 0;
            }
            record.failures += 1;
            record.last_failure = now;
            if record.failures > free {
                let doublings = (record.failures - free - 1).min(20);
                let delay = self
                    .config
                    .base_delay
                    .saturating_mul(1 << doublings)
                    .min(self.config.max_delay);
                record.blocked_until = now + delay;
            }
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(ThrottleConfig::default())
    }
}

fn account_key(account: &str) -> String {
    format!("account:{}", account.to_lowercase())
}

fn address_key(address: &str) -> String {
    format!("address:{address}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after(result: Result<()>) -> Option<u64> {
        match result {
            Err(Error::Throttled {
                retry_after_seconds,
            }) => Some(retry_after_seconds),
            _ => None,
        }
    }

    #[test]
    fn delays_start_after_the_free_failures_and_double() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for _ in 0..5 {
            throttle.record_failure_at("alice", "10.0.0.1", start);
        }
        assert!(throttle.check_at("alice", "10.0.0.1", start).is_ok());
        throttle.record_failure_at("alice", "10.0.0.1", start);
        assert_eq!(
            retry_after(throttle.check_at("alice", "10.0.0.1", start)),
            Some(1)
        );
        throttle.record_failure_at("alice", "10.0.0.1", start);
        assert_eq!(
            retry_after(throttle.check_at("alice", "10.0.0.1", start)),
            Some(2)
        );
        // The account is blocked from any address; other accounts are not.
        assert!(retry_after(throttle.check_at("ALICE", "10.9.9.9", start)).is_some());
        assert!(throttle.check_at("bob", "10.0.0.1", start).is_ok());
        // After the delay, one more try is allowed.
        let later = start + Duration::from_secs(3);
        assert!(throttle.check_at("alice", "10.0.0.1", later).is_ok());
    }

    #[test]
    fn delays_are_capped_and_forgotten_after_the_window() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for _ in 0..40 {
            throttle.record_failure_at("alice", "10.0.0.1", start);
        }
        assert_eq!(
            retry_after(throttle.check_at("alice", "10.0.0.1", start)),
            Some(900)
        );
        let after_window = start + Duration::from_secs(15 * 60);
        assert!(throttle.check_at("alice", "10.0.0.1", after_window).is_ok());
    }

    #[test]
    fn one_address_guessing_many_accounts_is_throttled() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for n in 0..21 {
            throttle.record_failure_at(&format!("user{n}"), "10.0.0.66", start);
        }
        assert!(retry_after(throttle.check_at("someone-new", "10.0.0.66", start)).is_some());
        assert!(throttle.check_at("someone-new", "10.0.0.67", start).is_ok());
    }

    #[test]
    fn concurrent_reservations_cannot_all_pass_the_check() {
        let throttle = Throttle::default();
        let passed = std::sync::atomic::AtomicUsize::new(0);
        let barrier = std::sync::Barrier::new(30);
        std::thread::scope(|scope| {
            for n in 0..30 {
                let (throttle, passed, barrier) = (&throttle, &passed, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    if throttle.reserve("alice", &format!("10.0.0.{n}")).is_ok() {
                        passed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        // The five free failures, and the sixth attempt that starts the first delay.
        assert_eq!(passed.into_inner(), 6);
    }

    #[test]
    fn a_released_reservation_costs_nothing() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for n in 0..19 {
            throttle.record_failure_at(&format!("user{n}"), "10.0.0.1", start);
        }
        for _ in 0..30 {
            assert!(throttle.reserve_at("alice", "10.0.0.1", start).is_ok());
            throttle.release("alice", "10.0.0.1");
        }
        // The address kept its 19 failures: one more is still free, the next one is not.
        throttle.record_failure_at("carol", "10.0.0.1", start);
        assert!(throttle.check_at("dave", "10.0.0.1", start).is_ok());
        throttle.record_failure_at("carol", "10.0.0.1", start);
        assert!(throttle.check_at("dave", "10.0.0.1", start).is_err());
        // A reservation that is not released counts as the failure.
        for _ in 0..6 {
            assert!(throttle.reserve_at("erin", "10.0.0.2", start).is_ok());
        }
        assert_eq!(
            retry_after(throttle.reserve_at("erin", "10.0.0.2", start)),
            Some(1)
        );
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for _ in 0..21 {
            throttle.record_failure_at("alice", "10.0.0.1", start);
        }
        throttle.record_success("alice");
        assert!(throttle.check_at("alice", "10.0.0.2", start).is_ok());
        assert!(retry_after(throttle.check_at("alice", "10.0.0.1", start)).is_some());
    }
}
