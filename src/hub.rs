//! Live fan-out of article events to subscribers.
//!
//! One topic per article with at least one subscriber: a buffer of the
//! article's latest events and a `watch` of the last position published to
//! it. The store's materialiser publishes durable events here, in position
//! order, and advances the *watermark*: the highest position known to be on
//! disk. Every event above the watermark a subscriber saw at subscribe time
//! reaches its topic; everything at or below it is in the store. That is
//! what makes resuming gap-free: replay `(cursor, watermark]` from the
//! store, then take live events above the last id sent.
//!
//! # Memory grows with use
//! A topic starts empty (a few hundred bytes, whatever `capacity` is) and
//! its buffer grows only as events arrive, up to `capacity`; the topic is
//! dropped when its last subscriber leaves. Subscribers share the buffered
//! events (`Arc`), so a hot article costs its buffer once, not once per
//! reader.
//!
//! # Slow subscribers
//! Publishing never waits: when the buffer is full its oldest event is
//! dropped, and a subscriber that had not read it yet is told it lagged;
//! its task catches up from the store (which holds every published event)
//! before reading live events again. A slow reader never slows anyone
//! else, and nothing is lost.
//!
//! A std `Mutex` guards the map and each buffer: no `.await` happens under
//! them and each critical section is a lookup or a copy of a few `Arc`s.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::watch;

use crate::domain::{ArticleEvent, ArticleId};

/// A subscriber's view of its article's topic.
pub struct Subscription {
    topic: Arc<Topic>,
    /// This subscriber's key in the topic's read positions.
    reader: u64,
    published: watch::Receiver<u64>,
    /// Every event with a position at or below this is already durable (and
    /// in the store); every later one will reach this subscription.
    pub watermark: u64,
}

/// Events dropped from the buffer before this subscriber read them.
#[derive(Debug, PartialEq, Eq)]
pub struct Lagged;

impl Subscription {
    /// The buffered events after `position`, oldest first, or [`Lagged`]
    /// if some of them are no longer buffered.
    ///
    /// The subscriber is taken to have everything up to the last event
    /// returned (or `position`): events every subscriber has are dropped
    /// from the buffer at the next publish.
    pub fn events_after(&self, position: u64) -> Result<Vec<Arc<ArticleEvent>>, Lagged> {
        let mut buffer = lock(&self.topic.buffer);
        if buffer.dropped_through > position {
            return Err(Lagged);
        }
        let first = buffer
            .events
            .partition_point(|event| event.position() <= position);
        let events: Vec<_> = buffer.events.range(first..).cloned().collect();
        let read = events.last().map_or(position, |event| event.position());
        buffer.readers.insert(self.reader, read);
        Ok(events)
    }

    /// Waits until something is published to the topic after the last call.
    pub async fn published(&mut self) {
        // The sender lives as long as the topic, which this subscription
        // holds, so this never fails.
        let _ = self.published.changed().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.topic.buffer).readers.remove(&self.reader);
    }
}

/// The fan-out hub. Share it in an `Arc`.
pub struct Hub {
    capacity: usize,
    state: Mutex<State>,
}

struct State {
    topics: HashMap<ArticleId, Arc<Topic>>,
    watermark: u64,
    /// The key of the next subscription.
    next_reader: u64,
}

struct Topic {
    buffer: Mutex<Buffer>,
    published: watch::Sender<u64>,
}

#[derive(Default)]
struct Buffer {
    events: VecDeque<Arc<ArticleEvent>>,
    /// The position of the newest event dropped from the buffer before
    /// every subscriber had read it.
    dropped_through: u64,
    /// Each subscriber's last position read.
    readers: HashMap<u64, u64>,
}

impl Buffer {
    /// Drops the events every subscriber has read: an idle topic whose
    /// readers keep up holds nothing.
    fn forget_read(&mut self) {
        let Some(&all_read) = self.readers.values().min() else {
            return;
        };
        while self
            .events
            .front()
            .is_some_and(|event| event.position() <= all_read)
        {
            self.events.pop_front();
        }
        if self.events.is_empty() {
            self.events.shrink_to(4);
        }
    }
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
                next_reader: 0,
            }),
        }
    }

    /// Publishes durable events (in position order) and raises the
    /// watermark to `durable_through`.
    pub fn publish(&self, events: &[ArticleEvent], durable_through: u64) {
        let mut state = lock(&self.state);
        for event in events {
            let Some(topic) = state.topics.get(event.article_id()) else {
                continue;
            };
            if topic.published.receiver_count() == 0 {
                // Nobody listens any more.
                state.topics.remove(event.article_id());
                continue;
            }
            let position = event.position();
            {
                let mut buffer = lock(&topic.buffer);
                buffer.forget_read();
                if buffer.events.len() >= self.capacity
                    && let Some(dropped) = buffer.events.pop_front()
                {
                    buffer.dropped_through = dropped.position();
                }
                buffer.events.push_back(Arc::new(event.clone()));
            }
            topic.published.send_replace(position);
        }
        state.watermark = state.watermark.max(durable_through);
    }

    /// Subscribes to an article's live events.
    pub fn subscribe(&self, article: &ArticleId) -> Subscription {
        let mut state = lock(&self.state);
        let watermark = state.watermark;
        let topic = state
            .topics
            .entry(article.clone())
            .or_insert_with(|| {
                Arc::new(Topic {
                    buffer: Mutex::new(Buffer::default()),
                    published: watch::channel(0).0,
                })
            })
            .clone();
        let reader = state.next_reader;
        state.next_reader += 1;
        // It needs nothing at or below the watermark from the buffer.
        lock(&topic.buffer).readers.insert(reader, watermark);
        let published = topic.published.subscribe();
        Subscription {
            topic,
            reader,
            published,
            watermark,
        }
    }

    /// The highest position known to be durable.
    pub fn watermark(&self) -> u64 {
        lock(&self.state).watermark
    }

    /// Drops an article's topic once its last subscriber has gone. Call
    /// after dropping the subscription.
    pub fn release(&self, article: &ArticleId) {
        let mut state = lock(&self.state);
        if state
            .topics
            .get(article)
            .is_some_and(|topic| topic.published.receiver_count() == 0)
        {
            state.topics.remove(article);
        }
    }

    /// Number of articles with live subscribers.
    pub fn topic_count(&self) -> usize {
        lock(&self.state).topics.len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
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
        let mut sub = hub.subscribe(&ArticleId::parse("a").unwrap());
        hub.publish(&[event("b", 1), event("a", 2)], 2);
        sub.published().await;
        let events = sub.events_after(0).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].position(), 2);
        assert!(sub.events_after(2).unwrap().is_empty());
        assert_eq!(hub.watermark(), 2);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_so_and_others_are_not_slowed() {
        let hub = Hub::new(2, 0);
        let article = ArticleId::parse("a").unwrap();
        let slow = hub.subscribe(&article);
        let fast = hub.subscribe(&article);
        let mut fast_read = 0;
        for id in 1..=5 {
            hub.publish(&[event("a", id)], id);
            let events = fast.events_after(fast_read).unwrap();
            assert_eq!(events.len(), 1);
            fast_read = events[0].position();
        }
        assert_eq!(slow.events_after(0), Err(Lagged));
        // Positions 4 and 5 are still buffered.
        assert_eq!(slow.events_after(3).unwrap().len(), 2);
    }

    #[test]
    fn events_every_subscriber_has_read_are_dropped() {
        let hub = Hub::new(1024, 0);
        let article = ArticleId::parse("a").unwrap();
        let first = hub.subscribe(&article);
        let second = hub.subscribe(&article);
        for id in 1..=3 {
            hub.publish(&[event("a", id)], id);
        }
        assert_eq!(first.events_after(0).unwrap().len(), 3);
        hub.publish(&[event("a", 4)], 4);
        // The second has read nothing yet: everything stays.
        assert_eq!(lock(&first.topic.buffer).events.len(), 4);
        assert_eq!(second.events_after(0).unwrap().len(), 4);
        hub.publish(&[event("a", 5)], 5);
        // Both have 1..=3 (the first read up to 3, the second up to 4).
        assert_eq!(lock(&first.topic.buffer).events.len(), 2);
        assert_eq!(first.events_after(3).unwrap().len(), 2);
        drop(second);
        hub.publish(&[event("a", 6)], 6);
        assert_eq!(lock(&first.topic.buffer).events.len(), 1);
        assert_eq!(first.events_after(5).unwrap().len(), 1);
    }

    #[test]
    fn a_topic_starts_empty_and_is_released_without_subscribers() {
        let hub = Hub::new(1024, 0);
        let article = ArticleId::parse("a").unwrap();
        let sub = hub.subscribe(&article);
        assert_eq!(hub.topic_count(), 1);
        assert_eq!(lock(&sub.topic.buffer).events.capacity(), 0);
        drop(sub);
        hub.release(&article);
        assert_eq!(hub.topic_count(), 0);
    }
}
