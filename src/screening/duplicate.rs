//! Duplicates: the same text from the same client within a time window.
//!
//! Texts are compared after lower-casing and collapsing whitespace, by a
//! 64-bit hash, so memory per entry is small. The memory is per process: a
//! restart forgets recent texts (the rate limit still applies).
//!
//! Every entry lives for the same window, so a queue in recording order is
//! also in expiry order: each call pops what expired from its front (cost
//! O(expired), no scan of the map, as mini-redis purges its keys), and past
//! `MAX_ENTRIES` the oldest entries go first.

use std::{
    collections::{HashMap, VecDeque},
    hash::{DefaultHasher, Hash, Hasher},
    sync::Mutex,
    time::Duration,
};

use tokio::time::Instant;

use crate::domain::{ClientId, CommentText, Decision, Filter, Reason};

/// Texts remembered at most (about 20 MB).
const MAX_ENTRIES: usize = 100_000;

type Key = (ClientId, u64);

pub struct DuplicateTracker {
    window: Duration,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    at: HashMap<Key, Instant>,
    /// (recorded at, key), oldest first; an entry whose key was recorded
    /// again later is skipped when popped.
    order: VecDeque<(Instant, Key)>,
}

impl Seen {
    fn forget_oldest(&mut self) {
        if let Some((at, key)) = self.order.pop_front()
            && self.at.get(&key) == Some(&at)
        {
            self.at.remove(&key);
        }
    }

    fn forget_expired(&mut self, now: Instant, window: Duration) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < window {
                break;
            }
            self.forget_oldest();
        }
    }
}

fn text_hash(text: &CommentText) -> u64 {
    let mut hasher = DefaultHasher::new();
    for word in text.as_str().split_whitespace() {
        word.to_lowercase().hash(&mut hasher);
    }
    hasher.finish()
}

impl DuplicateTracker {
    /// A zero window disables duplicate detection.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// A finding if `client` sent this text within the window.
    pub fn check(&self, client: &ClientId, text: &CommentText) -> Option<Reason> {
        if self.window.is_zero() {
            return None;
        }
        // Hashed before the lock: other submissions do not wait for it.
        let key = (client.clone(), text_hash(text));
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let at = seen.at.get(&key)?;
        (at.elapsed() < self.window).then(|| Reason {
            filter: Filter::Duplicate,
            code: "duplicate.recent_text".to_owned(),
            message: format!(
                "The same text was already submitted from this client in the last {} seconds.",
                self.window.as_secs()
            ),
            category: None,
            severity: None,
            decision: Decision::Rejected,
        })
    }

    /// Remembers that `client` sent this text now.
    pub fn record(&self, client: &ClientId, text: &CommentText) {
        if self.window.is_zero() {
            return;
        }
        let now = Instant::now();
        let key = (client.clone(), text_hash(text));
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.forget_expired(now, self.window);
        seen.at.insert(key.clone(), now);
        seen.order.push_back((now, key));
        while seen.at.len() > MAX_ENTRIES {
            seen.forget_oldest();
        }
    }

    /// Texts remembered now.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_same_text_from_the_same_client_is_a_duplicate_within_the_window() {
        let tracker = DuplicateTracker::new(Duration::from_secs(600));
        let client = ClientId::parse("c").unwrap();
        let other = ClientId::parse("d").unwrap();
        let text = CommentText::parse("Great  article", 100).unwrap();
        let same = CommentText::parse("great article", 100).unwrap();
        assert!(tracker.check(&client, &text).is_none());
        tracker.record(&client, &text);
        assert!(tracker.check(&client, &same).is_some());
        assert!(tracker.check(&other, &same).is_none());
        tokio::time::advance(Duration::from_secs(601)).await;
        assert!(tracker.check(&client, &same).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn expired_texts_are_forgotten_and_the_count_is_capped() {
        let tracker = DuplicateTracker::new(Duration::from_secs(10));
        let text = CommentText::parse("hello", 100).unwrap();
        for n in 0..1000 {
            tracker.record(&ClientId::parse(&format!("c{n}")).unwrap(), &text);
        }
        assert_eq!(tracker.len(), 1000);
        tokio::time::advance(Duration::from_secs(11)).await;
        tracker.record(&ClientId::parse("late").unwrap(), &text);
        assert_eq!(tracker.len(), 1);
        for n in 0..(MAX_ENTRIES + 10) {
            tracker.record(&ClientId::parse(&format!("d{n}")).unwrap(), &text);
        }
        assert_eq!(tracker.len(), MAX_ENTRIES);
    }
}
