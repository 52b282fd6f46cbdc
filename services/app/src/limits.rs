//! How many expensive requests (answers, uploads) run or wait at once, per user and in total.
//! Without a cap, one user's queued answers hold the blocking threads that logins and searches
//! need, and concurrent uploads fill the disk. Past a cap the request is refused at once (429
//! with `Retry-After`) instead of queueing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::service::ServiceError;

/// Answers and summaries one user may have running or waiting.
pub const GENERATION_PER_USER: usize = 2;
/// Answers and summaries running or waiting in all: the local model batches up to eight at
/// once (continuous batching), so more would only wait while holding a blocking thread each
/// (there are 16 per HTTP worker).
pub const GENERATION_TOTAL: usize = 8;
/// Uploads one user may have in flight (receiving or ingesting).
pub const UPLOADS_PER_USER: usize = 2;
/// Uploads in flight in all.
pub const UPLOADS_TOTAL: usize = 8;

/// Counters of requests in flight.
#[derive(Debug)]
pub struct ConcurrencyLimits {
    per_user: usize,
    total: usize,
    what: &'static str,
    state: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_user: HashMap<String, usize>,
}

/// A place taken; given back when dropped (also on errors, panics and client disconnects).
#[derive(Debug)]
pub struct Permit {
    user: String,
    state: Arc<Mutex<Counts>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.by_user.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.by_user.remove(&self.user);
            }
        }
    }
}

impl ConcurrencyLimits {
    pub fn new(per_user: usize, total: usize, what: &'static str) -> ConcurrencyLimits {
        ConcurrencyLimits {
            per_user,
            total,
            what,
            state: Arc::new(Mutex::new(Counts::default())),
        }
    }

    /// Takes a place for `user`, or refuses with [`ServiceError::Busy`].
    pub fn acquire(&self, user: &str) -> Result<Permit, ServiceError> {
        let mut counts = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mine = counts.by_user.get(user).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Err(ServiceError::Busy {
                message: format!(
                    "you already have {mine} {} in progress (at most {} at once): wait for one \
                     to finish",
                    self.what, self.per_user
                ),
                retry_after: 5,
            });
        }
        if counts.total >= self.total {
            return Err(ServiceError::Busy {
                message: format!(
                    "the server is busy with {} {}: try again shortly",
                    counts.total, self.what
                ),
                retry_after: 10,
            });
        }
        counts.total += 1;
        *counts.by_user.entry(user.to_string()).or_default() += 1;
        Ok(Permit {
            user: user.to_string(),
            state: Arc::clone(&self.state),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_and_total_caps_hold_and_places_come_back() {
        let limits = ConcurrencyLimits::new(2, 3, "answers");
        let a1 = limits.acquire("alice");
        let a2 = limits.acquire("alice");
        assert!(a1.is_ok() && a2.is_ok());
        assert!(matches!(
            limits.acquire("alice"),
            Err(ServiceError::Busy { .. })
        ));
        let b1 = limits.acquire("bob");
        assert!(b1.is_ok());
        // Total reached: carol waits for a place.
        assert!(limits.acquire("carol").is_err());
        drop(a1);
        assert!(limits.acquire("carol").is_ok());
    }
}
