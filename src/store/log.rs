//! The seam between commentd and the log it keeps: [`CommentLog`].
//!
//! A log assigns positions, makes appended events durable, and answers reads
//! of what is committed. Everything else (listings, the held queue, bans,
//! the audit by article) is a view the store derives from it. The sled log
//! ([`super::sled_log::SledLog`]) is the embedded default; a replicated log
//! (NATS JetStream) fits the same shape: it assigns positions (stream
//! sequences), detects duplicates within a time window (`Nats-Msg-Id`), and
//! appends on a condition (expected last sequence of a subject).
//!
//! Every log passes the same conformance suite (`store::conformance`).

use std::{future::Future, pin::Pin, time::Duration};

use tokio::sync::watch;

use super::event::{DecodeError, Event};

/// One event to append, with the conditions of its append.
#[derive(Debug, Clone)]
pub struct Append {
    pub event: Event,
    /// What the event is about, for conditional appends (a comment, a
    /// client): the log remembers the last position that named each key.
    pub key: Option<String>,
    /// Append only if the key's last event is at this position (`None`:
    /// the key has no event yet). Checked for every event of a batch before
    /// any is appended.
    pub expect: Option<Option<u64>>,
    /// A retry of the same append carries the same id: within the log's
    /// duplicate window ([`CommentLog::duplicate_window`]) it is not appended
    /// again, and the first append's position is returned.
    pub dedup_id: Option<String>,
    /// Positions whose comment text this event erases (a removal takes the
    /// text off the disk, not only out of the listings).
    pub erase: Option<u64>,
}

impl Append {
    pub fn new(event: Event) -> Self {
        Self {
            event,
            key: None,
            expect: None,
            dedup_id: None,
            erase: None,
        }
    }

    /// Names the key this event is about.
    pub fn about(mut self, key: String) -> Self {
        self.key = Some(key);
        self
    }

    /// Appends only if the key's last event is at `position`.
    pub fn expecting(mut self, key: String, position: Option<u64>) -> Self {
        self.key = Some(key);
        self.expect = Some(position);
        self
    }

    pub fn dedup(mut self, id: String) -> Self {
        self.dedup_id = Some(id);
        self
    }

    pub fn erasing(mut self, position: u64) -> Self {
        self.erase = Some(position);
        self
    }
}

/// What became of one [`Append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Appended at this position.
    New(u64),
    /// A duplicate of the append at this position, which is durable.
    Duplicate(u64),
}

impl Appended {
    pub fn position(self) -> u64 {
        match self {
            Self::New(position) | Self::Duplicate(position) => position,
        }
    }
}

/// Errors of a log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A condition did not hold: nothing of the batch was appended.
    #[error("the last event of {key} is not at the expected position")]
    Conflict { key: String },
    #[error("the log is closed")]
    Closed,
    /// The outcome is unknown: the events may or may not be durable.
    #[error("writing the log failed: {0}")]
    Write(String),
    #[error("reading the log failed: {0}")]
    Read(String),
    #[error("corrupt event at position {position}: {source}")]
    Corrupt { position: u64, source: DecodeError },
    /// The disk is (nearly) full: nothing of the batch was written, and
    /// appends resume by themselves once space is freed.
    #[error("{0}")]
    NoSpace(String),
    /// A replicated log cannot be reached: nothing was appended, or the
    /// outcome is unknown (the message says which); it recovers by itself.
    #[error("{0}")]
    Unavailable(String),
}

/// Whether a log takes appends now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writability {
    Writable,
    /// Refusing appends until space is freed (it recovers by itself).
    NoSpace(String),
    /// Stopped after a failed write; a restart recovers it.
    Failed(String),
    /// A replicated log is out of reach (it recovers by itself).
    Unreachable(String),
}

pub type AppendFuture = Pin<Box<dyn Future<Output = Result<Vec<Appended>, LogError>> + Send>>;

/// An ordered, durable log of events.
pub trait CommentLog: Send + Sync + 'static {
    /// Appends a batch: every condition is checked first, then the events
    /// take consecutive positions (a duplicate takes none) and the future
    /// resolves once all of them are durable. One event, one position.
    fn append(&self, batch: Vec<Append>) -> AppendFuture;

    /// Committed events after `after`, in position order, at most `limit`.
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Event)>, LogError>;

    /// The committed event at `position`, if there is one.
    fn get(&self, position: u64) -> Result<Option<Event>, LogError>;

    /// The position of the first append of `dedup_id`, if it is committed
    /// and within the duplicate window.
    fn find_duplicate(&self, dedup_id: &str) -> Result<Option<u64>, LogError>;

    /// The highest committed position, watched.
    fn committed(&self) -> watch::Receiver<u64>;

    /// How long duplicate appends are recognised.
    fn duplicate_window(&self) -> Duration;

    /// Whether appends are taken now, watched (for the health service).
    fn writability(&self) -> watch::Receiver<Writability>;

    /// Stops accepting appends, finishes the ones queued and returns once
    /// they are durable.
    fn close(&self) -> Pin<Box<dyn Future<Output = Result<(), LogError>> + Send>>;
}
