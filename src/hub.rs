//! Live fan-out of article events to subscribers.
//!
//! One bounded `tokio::sync::broadcast` channel per article with at least one
//! subscriber. The store's flusher publishes durable events here, in id
//! order, and advances the *watermark*: the highest id known to be on disk.
//! Every event above the watermark a subscriber saw at subscribe time reaches
//! its receiver; everything at or below it is in the store. That is what
//! makes resuming gap-free: replay `(cursor, watermark]` from the store,
//! then take live events above the last id sent.
//!
//! # Slow subscribers
//! Publishing never waits: a subscriber that falls more than the channel's
//! capacity behind gets `Lagged` from its receiver, and its task catches up
//! from the store (which holds every published event) before reading live
//! events again. Memory stays bounded by the capacity per article, a slow
//! reader never slows anyone else, and nothing is lost.
//!
//! A std `Mutex` guards the map: no `.await` happens under it and each
//! critical section is a hash lookup.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::broadcast;

use crate::domain::{ArticleEvent, ArticleId};

/// A subscriber's receiver and the watermark when it subscribed.
pub struct Subscription {
    pub receiver: broadcast::Receiver<Arc<ArticleEvent>>,
    /// Every event with a position at or below this is already durable (and
    /// in the store); every later one will arrive on `receiver`.
    pub watermark: u64,
}

/// The fan-out hub. Share it in an `Arc`.
pub struct Hub {
    capacity: usize,
    state: Mutex<State>,
}

struct State {
    topics: HashMap<ArticleId, broadcast::Sender<Arc<ArticleEvent>>>,
    watermark: u64,
}

impl Hub {
    /// `capacity` is the per-article buffer of events a subscriber may fall
    /// behind before it is caught up from the store; `watermark` the highest
    /// id already on disk.
    pub fn new(capacity: usize, watermark: u64) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::new(State {
                topics: HashMap::new(),
                watermark,
            }),
        }
    }

    /// Publishes durable events (in position order) and raises the
    /// watermark to `durable_through`.
    pub fn publish(&self, events: &[ArticleEvent], durable_through: u64) {
        let mut state = self.lock();
        for event in events {
            if let Some(sender) = state.topics.get(event.article_id())
                && sender.send(Arc::new(event.clone())).is_err()
            {
                // Nobody listens any more.
                state.topics.remove(event.article_id());
            }
        }
        state.watermark = state.watermark.max(durable_through);
    }

    /// Subscribes to an article's live events.
    pub fn subscribe(&self, article: &ArticleId) -> Subscription {
        let mut state = self.lock();
        let watermark = state.watermark;
        let receiver = state
            .topics
            .entry(article.clone())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe();
        Subscription {
            receiver,
            watermark,
        }
    }

    /// The highest position known to be durable.
    pub fn watermark(&self) -> u64 {
        self.lock().watermark
    }

    /// Drops an article's channel once its last subscriber has gone. Call
    /// after dropping the receiver.
    pub fn release(&self, article: &ArticleId) {
        let mut state = self.lock();
        if state
            .topics
            .get(article)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            state.topics.remove(article);
        }
    }

    /// Number of articles with live subscribers.
    pub fn topic_count(&self) -> usize {
        self.lock().topics.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::domain::{AuthorName, Comment, CommentId, CommentState, CommentText};

    fn event(article: &str, id: u64) -> ArticleEvent {
        ArticleEvent::Published(Comment {
            id: CommentId::new(id),
            article_id: ArticleId::parse(article).unwrap(),
            author_name: AuthorName::parse("a").unwrap(),
            text: CommentText::parse("t", 10).unwrap(),
            parent_id: None,
            client_id: crate::domain::ClientId::parse("c").unwrap(),
            created_at: SystemTime::UNIX_EPOCH,
            state: CommentState::Published,
        })
    }

    #[tokio::test]
    async fn a_subscriber_gets_only_its_articles_events() {
        let hub = Hub::new(8, 0);
        let mut sub = hub.subscribe(&ArticleId::parse("a").unwrap()).receiver;
        hub.publish(&[event("b", 1), event("a", 2)], 2);
        assert_eq!(sub.recv().await.unwrap().position(), 2);
        assert!(sub.try_recv().is_err());
        assert_eq!(hub.watermark(), 2);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_so_and_others_are_not_slowed() {
        let hub = Hub::new(2, 0);
        let article = ArticleId::parse("a").unwrap();
        let mut slow = hub.subscribe(&article).receiver;
        let mut fast = hub.subscribe(&article).receiver;
        for id in 1..=5 {
            hub.publish(&[event("a", id)], id);
            assert_eq!(fast.recv().await.unwrap().position(), id);
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(3))
        ));
    }

    #[test]
    fn a_topic_without_subscribers_is_released() {
        let hub = Hub::new(2, 0);
        let article = ArticleId::parse("a").unwrap();
        let sub = hub.subscribe(&article);
        assert_eq!(hub.topic_count(), 1);
        drop(sub);
        hub.release(&article);
        assert_eq!(hub.topic_count(), 0);
    }
}
