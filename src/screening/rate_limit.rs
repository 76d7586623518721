//! Per-client submission rate: a token bucket per `client_id`.
//!
//! Written by hand (about forty lines) rather than taken from a crate so
//! that it runs on tokio's clock, which tests can pause and advance.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use tokio::time::Instant;

use crate::domain::ClientId;

/// A bucket holds `burst` tokens and regains one every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    /// Tokens a fresh client has; 0 disables rate limiting.
    pub burst: u32,
    /// Time to regain one token.
    pub interval: Duration,
}

impl Default for RatePolicy {
    /// One comment per 3 s on average, bursts of 3.
    fn default() -> Self {
        Self {
            burst: 3,
            interval: Duration::from_secs(3),
        }
    }
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct RateLimiter {
    policy: RatePolicy,
    buckets: Mutex<HashMap<ClientId, Bucket>>,
}

/// Buckets kept before idle (full) ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

impl RateLimiter {
    pub fn new(policy: RatePolicy) -> Self {
        Self {
            policy,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `client`, or says how long until one is available.
    pub fn try_acquire(&self, client: &ClientId) -> Result<(), Duration> {
        if self.policy.burst == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let burst = f64::from(self.policy.burst);
        let per_token = self.policy.interval.as_secs_f64().max(f64::EPSILON);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            let full_after = self.policy.interval * self.policy.burst;
            buckets.retain(|_, bucket| now.duration_since(bucket.updated) < full_after);
        }
        let bucket = buckets.entry(client.clone()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let regained = now.duration_since(bucket.updated).as_secs_f64() / per_token;
        bucket.tokens = (bucket.tokens + regained).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) * per_token))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str) -> ClientId {
        ClientId::parse(name).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_allowed_then_the_client_waits_for_a_token() {
        let limiter = RateLimiter::new(RatePolicy::default());
        let reader = client("reader");
        for _ in 0..3 {
            assert!(limiter.try_acquire(&reader).is_ok());
        }
        let wait = limiter.try_acquire(&reader).unwrap_err();
        assert!(
            wait > Duration::from_secs(2) && wait <= Duration::from_secs(3),
            "{wait:?}"
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(limiter.try_acquire(&reader).is_ok());
        assert!(limiter.try_acquire(&reader).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn clients_have_separate_buckets() {
        let limiter = RateLimiter::new(RatePolicy {
            burst: 1,
            interval: Duration::from_secs(60),
        });
        assert!(limiter.try_acquire(&client("a")).is_ok());
        assert!(limiter.try_acquire(&client("a")).is_err());
        assert!(limiter.try_acquire(&client("b")).is_ok());
    }

    #[tokio::test]
    async fn a_zero_burst_disables_the_limit() {
        let limiter = RateLimiter::new(RatePolicy {
            burst: 0,
            interval: Duration::from_secs(60),
        });
        for _ in 0..100 {
            assert!(limiter.try_acquire(&client("a")).is_ok());
        }
    }
}
