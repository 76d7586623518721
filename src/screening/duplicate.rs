//! Duplicates: the same text from the same client within a time window.
//!
//! Texts are compared after lower-casing and collapsing whitespace, by a
//! 64-bit hash, so memory per entry is small. The memory is per process: a
//! restart forgets recent texts (the rate limit still applies).

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::Mutex,
    time::Duration,
};

use tokio::time::Instant;

use crate::domain::{ClientId, CommentText, Decision, Filter, Reason};

/// Entries kept before expired ones are dropped.
const PRUNE_ABOVE: usize = 50_000;

pub struct DuplicateTracker {
    window: Duration,
    seen: Mutex<HashMap<(ClientId, u64), Instant>>,
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
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// A finding if `client` sent this text within the window.
    pub fn check(&self, client: &ClientId, text: &CommentText) -> Option<Reason> {
        if self.window.is_zero() {
            return None;
        }
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let at = seen.get(&(client.clone(), text_hash(text)))?;
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
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > PRUNE_ABOVE {
            seen.retain(|_, at| now.duration_since(*at) < self.window);
        }
        seen.insert((client.clone(), text_hash(text)), now);
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
}
