//! Rates: a token bucket per key (a `client_id`, a peer address).
//!
//! Written by hand rather than taken from a crate so that it runs on
//! tokio's clock, which tests can pause and advance.
//!
//! # Bounded memory, O(expired) cleanup
//! A bucket left alone for `burst × interval` is full again, which is the
//! same as having no bucket, so it can be forgotten. Buckets are kept in a
//! map beside a queue of (time of last take, key) in time order, as
//! mini-redis keeps its expirations: each call first pops the queue's
//! expired front and drops those buckets, so cleanup costs what expired and
//! never scans the map. Only a successful take touches a bucket (a refusal
//! changes nothing, since tokens are regained lazily from the last take),
//! so a flood of refused calls adds nothing to the queue. Past `max_keys`
//! the least recently used bucket is dropped early: under a flood of
//! distinct keys that key may briefly get a fresh burst, but memory stays
//! bounded.

use std::{collections::HashMap, collections::VecDeque, hash::Hash, sync::Mutex, time::Duration};

use tokio::time::Instant;

/// A bucket holds `burst` tokens and regains one every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    /// Tokens a fresh key has; 0 disables the limit.
    pub burst: u32,
    /// Time to regain one token.
    pub interval: Duration,
}

impl Default for RatePolicy {
    /// One comment per 3 s on average, bursts of 3 (per `client_id`).
    fn default() -> Self {
        Self {
            burst: 3,
            interval: Duration::from_secs(3),
        }
    }
}

impl RatePolicy {
    /// `per_second` on average, bursts of `burst`; 0 disables.
    pub fn per_second(per_second: u32, burst: u32) -> Self {
        if per_second == 0 {
            return Self {
                burst: 0,
                interval: Duration::ZERO,
            };
        }
        Self {
            burst: burst.max(1),
            interval: Duration::from_secs(1) / per_second,
        }
    }

    fn full_after(&self) -> Duration {
        self.interval * self.burst
    }
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

struct Buckets<K> {
    map: HashMap<K, Bucket>,
    /// (last take, key), oldest first; entries whose take is no longer the
    /// bucket's last are skipped when popped.
    touched: VecDeque<(Instant, K)>,
}

pub struct RateLimiter<K> {
    policy: RatePolicy,
    max_keys: usize,
    buckets: Mutex<Buckets<K>>,
}

/// Keys remembered at most, by default (about 20 MB of `client_id`s).
pub const DEFAULT_MAX_KEYS: usize = 100_000;

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(policy: RatePolicy) -> Self {
        Self::with_max_keys(policy, DEFAULT_MAX_KEYS)
    }

    pub fn with_max_keys(policy: RatePolicy, max_keys: usize) -> Self {
        Self {
            policy,
            max_keys: max_keys.max(1),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                touched: VecDeque::new(),
            }),
        }
    }

    /// Takes a token for `key`, or says how long until one is available.
    pub fn try_acquire(&self, key: &K) -> Result<(), Duration> {
        if self.policy.burst == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.forget_full(now, self.policy.full_after());
        let tokens = self.tokens_at(buckets.map.get(key), now)?;
        buckets.map.insert(
            key.clone(),
            Bucket {
                tokens: tokens - 1.0,
                updated: now,
            },
        );
        buckets.touched.push_back((now, key.clone()));
        while buckets.map.len() > self.max_keys {
            buckets.forget_oldest();
        }
        Ok(())
    }

    /// Whether `key` has a token now, without taking it.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self.policy.burst == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        self.tokens_at(buckets.map.get(key), now).map(drop)
    }

    /// The tokens a key's bucket holds at `now` (a missing bucket is
    /// full), or how long until it holds one.
    fn tokens_at(&self, bucket: Option<&Bucket>, now: Instant) -> Result<f64, Duration> {
        let burst = f64::from(self.policy.burst);
        let per_token = self.policy.interval.as_secs_f64().max(f64::EPSILON);
        let tokens = bucket.map_or(burst, |bucket| {
            let regained = now.duration_since(bucket.updated).as_secs_f64() / per_token;
            (bucket.tokens + regained).min(burst)
        });
        if tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - tokens) * per_token));
        }
        Ok(tokens)
    }

    /// Keys with a bucket (not yet full again).
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq> Buckets<K> {
    /// Drops the buckets untouched for `full_after` (full again).
    fn forget_full(&mut self, now: Instant, full_after: Duration) {
        while let Some((at, _)) = self.touched.front() {
            if now.duration_since(*at) < full_after {
                break;
            }
            self.forget_oldest();
        }
    }

    /// Pops the oldest take and drops its bucket if that was its last take.
    fn forget_oldest(&mut self) {
        if let Some((at, key)) = self.touched.pop_front()
            && self
                .map
                .get(&key)
                .is_some_and(|bucket| bucket.updated == at)
        {
            self.map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_allowed_then_the_key_waits_for_a_token() {
        let limiter = RateLimiter::new(RatePolicy::default());
        for _ in 0..3 {
            assert!(limiter.try_acquire(&"reader").is_ok());
        }
        let wait = limiter.try_acquire(&"reader").unwrap_err();
        assert!(
            wait > Duration::from_secs(2) && wait <= Duration::from_secs(3),
            "{wait:?}"
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(limiter.check(&"reader").is_ok());
        assert!(limiter.try_acquire(&"reader").is_ok());
        assert!(limiter.check(&"reader").is_err());
        assert!(limiter.try_acquire(&"reader").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn keys_have_separate_buckets() {
        let limiter = RateLimiter::new(RatePolicy {
            burst: 1,
            interval: Duration::from_secs(60),
        });
        assert!(limiter.try_acquire(&"a").is_ok());
        assert!(limiter.try_acquire(&"a").is_err());
        assert!(limiter.try_acquire(&"b").is_ok());
    }

    #[tokio::test]
    async fn a_zero_burst_disables_the_limit() {
        let limiter = RateLimiter::new(RatePolicy::per_second(0, 10));
        for _ in 0..100 {
            assert!(limiter.try_acquire(&"a").is_ok());
        }
        assert!(limiter.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn full_buckets_are_forgotten_and_refusals_remember_nothing() {
        let limiter = RateLimiter::new(RatePolicy {
            burst: 2,
            interval: Duration::from_secs(1),
        });
        for key in 0..1000 {
            assert!(limiter.try_acquire(&key).is_ok());
        }
        assert_eq!(limiter.len(), 1000);
        for _ in 0..1000 {
            let _ = limiter.try_acquire(&7);
        }
        let queued = limiter.buckets.lock().unwrap().touched.len();
        assert_eq!(queued, 1001, "refused takes must not queue anything");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(limiter.try_acquire(&5000).is_ok());
        assert_eq!(limiter.len(), 1, "buckets kept after they filled");
        assert_eq!(limiter.buckets.lock().unwrap().touched.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_number_of_keys_is_capped() {
        let limiter = RateLimiter::with_max_keys(
            RatePolicy {
                burst: 1,
                interval: Duration::from_secs(3600),
            },
            100,
        );
        for key in 0..10_000 {
            assert!(limiter.try_acquire(&key).is_ok());
        }
        assert_eq!(limiter.len(), 100);
        // The most recent keys are the ones remembered.
        assert!(limiter.try_acquire(&9_999).is_err());
    }

    #[test]
    fn per_second_policies() {
        let policy = RatePolicy::per_second(100, 200);
        assert_eq!(policy.burst, 200);
        assert_eq!(policy.interval, Duration::from_millis(10));
    }
}
