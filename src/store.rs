//! The durable store: comments on local disk in sled, with group commit.
//!
//! # Key layout (one sled tree, `comments.v1`)
//! Everything lives in one tree so a submission is one atomic `apply_batch`:
//! the comment, its index entry, the idempotency record and the id counter
//! land together or not at all.
//!
//! | key                                   | value                              |
//! |---------------------------------------|------------------------------------|
//! | `a` article_id `\0` id (u64 BE)       | approved comment (JSON)            |
//! | `i` id (u64 BE)                       | article id of an approved comment  |
//! | `h` id (u64 BE)                       | held comment and its verdict       |
//! | `k` client_id `\0` idempotency_key    | the first response to that key     |
//!
//! Article ids cannot contain `\0` (validation), so an article's approved
//! comments are one ordered prefix scan, oldest first.
//!
//! # Ids are log positions
//! Every stored comment takes the next id of one server-wide counter, under
//! one lock, so ids order all writes. Subscribers use an id as their cursor.
//! The counter is sled's `generate_id`, which never hands out an id twice,
//! even after a crash (it skips ahead on recovery), so ids may have gaps.
//!
//! # Durability: group commit
//! sled 0.34.7's `flush_async()` can hang when many callers use it at once
//! (sled#1308), and one blocking `flush()` per request halves throughput.
//! Instead one flusher task runs the blocking `flush()` on the blocking pool
//! and then wakes every writer whose batch was applied before that flush
//! started. Only then is an approved comment acknowledged and handed to the
//! commit listener (the live hub), in id order.
//!
//! sled's flush writes its log with `write` + `sync_file_range`, not `fsync`:
//! an acknowledged comment survives a crash of the process (kill -9, OOM,
//! panic) because its bytes are in the kernel's page cache. After a power
//! cut or kernel crash, the last moments of writes may be lost, because
//! `sync_file_range` neither flushes the drive's cache nor the file's
//! metadata.
//!
//! # Blocking
//! Reads and `apply_batch` run on the async threads: they touch sled's page
//! cache and its in-memory log buffer and return in microseconds. The one
//! call that waits on the disk, `flush()`, runs on the blocking pool.

use std::{
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};

use crate::domain::{
    ArticleEvent, ArticleId, ClientId, Comment, CommentId, CommentState, Decision, IdempotencyKey,
    Submission, Verdict,
};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record under key {key:?}: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    #[error("flushing to disk failed; the write may not be durable")]
    FlushFailed,
    #[error("the store is shutting down")]
    Closed,
}

/// Called by the flusher with the events that just became durable (in id
/// order) and the highest id now on disk.
pub type CommitListener = Box<dyn Fn(&[ArticleEvent], u64) + Send + Sync>;

/// The first response to an idempotency key, replayed on retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub fingerprint: u64,
    pub verdict: Verdict,
    pub comment: Option<Comment>,
    pub recorded_at: SystemTime,
}

/// A held comment with the verdict that held it (for moderators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldComment {
    pub comment: Comment,
    pub verdict: Verdict,
}

/// What `record_submission` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The submission was recorded; `comment` is set when it was stored.
    New { comment: Option<Comment> },
    /// The idempotency key was already used: here is the first response.
    Replayed(IdempotencyRecord),
}

/// The result of looking a comment up by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Published(Comment),
    Held(Box<HeldComment>),
    Missing,
}

/// One page of an article's approved comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub comments: Vec<Comment>,
    /// Set when more comments follow the last one of this page.
    pub more: bool,
}

const PUBLISHED: u8 = b'a';
const INDEX: u8 = b'i';
const HELD: u8 = b'h';
const IDEMPOTENCY: u8 = b'k';

/// The durable comment store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    db: sled::Db,
    tree: sled::Tree,
    idempotency_ttl: Duration,
    /// Serialises writes so ids, batches and pending events share one order.
    log: Mutex<LogState>,
    wake_flusher: Notify,
    durable: watch::Receiver<DurableState>,
    closing: AtomicBool,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

struct LogState {
    last_id: u64,
    /// Number of batches applied so far: a writer's ticket for durability.
    written: u64,
    /// Approved comments applied but not yet flushed, in id order.
    pending: Vec<ArticleEvent>,
}

#[derive(Debug, Clone, Copy, Default)]
struct DurableState {
    /// Every batch with a ticket up to this one is on disk.
    flushed: u64,
    /// The flush covering tickets up to this one failed.
    failed_through: u64,
}

impl Store {
    /// Opens (or creates) the store in `path` and starts its flusher task.
    /// Must be called inside a tokio runtime.
    pub fn open(
        path: &Path,
        idempotency_ttl: Duration,
        on_commit: CommitListener,
    ) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(path).open()?;
        let tree = db.open_tree("comments.v1")?;
        let last_id = [INDEX, HELD]
            .into_iter()
            .map(|prefix| tree.scan_prefix([prefix]).next_back().transpose())
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .map(|(key, _)| decode_u64(&key[1..]))
            .max()
            .unwrap_or(0);
        let (durable_tx, durable_rx) = watch::channel(DurableState::default());
        let shared = Arc::new(Shared {
            db,
            tree,
            idempotency_ttl,
            log: Mutex::new(LogState {
                last_id,
                written: 0,
                pending: Vec::new(),
            }),
            wake_flusher: Notify::new(),
            durable: durable_rx,
            closing: AtomicBool::new(false),
            flusher: Mutex::new(None),
        });
        let handle = tokio::spawn(run_flusher(shared.clone(), durable_tx, on_commit));
        *lock(&shared.flusher) = Some(handle);
        Ok(Self { shared })
    }

    /// The highest id handed out so far (0 when the store is empty).
    pub fn last_id(&self) -> u64 {
        lock(&self.shared.log).last_id
    }

    /// Looks up the first response to an idempotency key, if it is still
    /// remembered.
    pub fn idempotency_record(
        &self,
        client_id: &ClientId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let key = idempotency_key(client_id, key);
        let Some(bytes) = self.shared.tree.get(&key)? else {
            return Ok(None);
        };
        let record: IdempotencyRecord = decode(&key, &bytes)?;
        let age = SystemTime::now()
            .duration_since(record.recorded_at)
            .unwrap_or_default();
        Ok((age <= self.shared.idempotency_ttl).then_some(record))
    }

    /// Records a screened submission: an approved comment is published, a
    /// held one is kept for moderators, a rejected one stores nothing but
    /// its idempotency record. Returns once everything written is on disk.
    ///
    /// The idempotency key is checked again under the write lock, so two
    /// concurrent calls with the same key store one comment between them.
    pub async fn record_submission(
        &self,
        submission: &Submission,
        verdict: &Verdict,
    ) -> Result<Recorded, StoreError> {
        let shared = &self.shared;
        let (ticket, comment) = {
            let mut log = lock(&shared.log);
            if shared.closing.load(Ordering::Acquire) {
                return Err(StoreError::Closed);
            }
            if let Some(key) = &submission.idempotency_key
                && let Some(record) = self.idempotency_record(&submission.client_id, key)?
            {
                return Ok(Recorded::Replayed(record));
            }

            let mut batch = sled::Batch::default();
            let mut next_id = log.last_id;
            let comment = match verdict.decision {
                Decision::Rejected => None,
                decision => {
                    next_id = shared.db.generate_id()? + 1;
                    let id = CommentId::new(next_id);
                    let state = if decision == Decision::Approved {
                        CommentState::Published
                    } else {
                        CommentState::Held
                    };
                    let comment = Comment {
                        id,
                        article_id: submission.article_id.clone(),
                        author_name: submission.author_name.clone(),
                        text: submission.text.clone(),
                        parent_id: submission.parent_id,
                        created_at: SystemTime::now(),
                        state,
                    };
                    match state {
                        CommentState::Published => {
                            batch.insert(published_key(&comment.article_id, id), encode(&comment));
                            batch.insert(&index_key(id), comment.article_id.as_str().as_bytes());
                        }
                        CommentState::Held => {
                            let held = HeldComment {
                                comment: comment.clone(),
                                verdict: verdict.clone(),
                            };
                            batch.insert(&held_key(id), encode(&held));
                        }
                    }
                    Some(comment)
                }
            };
            if let Some(key) = &submission.idempotency_key {
                let record = IdempotencyRecord {
                    fingerprint: submission.fingerprint(),
                    verdict: verdict.clone(),
                    comment: comment.clone(),
                    recorded_at: SystemTime::now(),
                };
                batch.insert(idempotency_key(&submission.client_id, key), encode(&record));
            } else if comment.is_none() {
                // Nothing to store: a rejection without idempotency key.
                return Ok(Recorded::New { comment: None });
            }

            shared.tree.apply_batch(batch)?;
            log.last_id = next_id;
            log.written += 1;
            if let Some(comment) = comment
                .as_ref()
                .filter(|c| c.state == CommentState::Published)
            {
                log.pending.push(ArticleEvent::Published(comment.clone()));
            }
            let ticket = log.written;
            drop(log);
            shared.wake_flusher.notify_one();
            (ticket, comment)
        };
        self.wait_durable(ticket).await?;
        Ok(Recorded::New { comment })
    }

    async fn wait_durable(&self, ticket: u64) -> Result<(), StoreError> {
        let mut durable = self.shared.durable.clone();
        let state = durable
            .wait_for(|d| d.flushed >= ticket || d.failed_through >= ticket)
            .await
            .map_err(|_| StoreError::Closed)?;
        if state.flushed >= ticket {
            Ok(())
        } else {
            Err(StoreError::FlushFailed)
        }
    }

    /// Finds a comment by id, wherever it is.
    pub fn lookup(&self, id: CommentId) -> Result<Lookup, StoreError> {
        let tree = &self.shared.tree;
        if let Some(article) = tree.get(index_key(id))? {
            let article = ArticleId::parse(&String::from_utf8_lossy(&article)).map_err(|v| {
                StoreError::Corrupt {
                    key: format!("index {id}"),
                    source: serde::de::Error::custom(v.description),
                }
            })?;
            let key = published_key(&article, id);
            if let Some(bytes) = tree.get(&key)? {
                return Ok(Lookup::Published(decode(&key, &bytes)?));
            }
        }
        let key = held_key(id);
        if let Some(bytes) = tree.get(key)? {
            return Ok(Lookup::Held(Box::new(decode(&key, &bytes)?)));
        }
        Ok(Lookup::Missing)
    }

    /// Approved comments of `article` with ids in `(after, through]`, oldest
    /// first, at most `limit` of them.
    pub fn published_after(
        &self,
        article: &ArticleId,
        after: Option<CommentId>,
        through: Option<CommentId>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let start = published_key(
            article,
            CommentId::new(after.map_or(0, |id| id.position() + 1)),
        );
        let end = match through {
            Some(id) => published_key(article, CommentId::new(id.position().saturating_add(1))),
            None => {
                let mut end = article_prefix(article);
                *end.last_mut().expect("prefix ends with a separator") = 1;
                end
            }
        };
        let mut comments = Vec::with_capacity(limit.min(256));
        let mut more = false;
        for entry in self.shared.tree.range(start..end) {
            let (key, bytes) = entry?;
            if comments.len() == limit {
                more = true;
                break;
            }
            comments.push(decode(&key, &bytes)?);
        }
        Ok(Page { comments, more })
    }

    /// Flushes what is pending, stops the flusher and refuses further writes.
    pub async fn close(&self) -> Result<(), StoreError> {
        {
            // Taking the write lock orders this after every in-progress write.
            let _log = lock(&self.shared.log);
            self.shared.closing.store(true, Ordering::Release);
        }
        self.shared.wake_flusher.notify_one();
        let handle = lock(&self.shared.flusher).take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
        let db = self.shared.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|_| StoreError::FlushFailed)??;
        Ok(())
    }
}

/// The group-commit loop: flush, then acknowledge and publish in id order.
async fn run_flusher(
    shared: Arc<Shared>,
    durable: watch::Sender<DurableState>,
    on_commit: CommitListener,
) {
    loop {
        shared.wake_flusher.notified().await;
        let (target, events, last_id) = {
            let mut log = lock(&shared.log);
            (log.written, std::mem::take(&mut log.pending), log.last_id)
        };
        let done = durable
            .borrow()
            .flushed
            .max(durable.borrow().failed_through);
        if target > done {
            let db = shared.db.clone();
            match tokio::task::spawn_blocking(move || db.flush()).await {
                Ok(Ok(_)) => {
                    on_commit(&events, last_id);
                    durable.send_modify(|d| d.flushed = target);
                }
                Ok(Err(error)) => {
                    tracing::error!(%error, "flush failed; failing the writes it covered");
                    durable.send_modify(|d| d.failed_through = target);
                }
                Err(error) => {
                    tracing::error!(%error, "flush task failed; failing the writes it covered");
                    durable.send_modify(|d| d.failed_through = target);
                }
            }
        }
        if shared.closing.load(Ordering::Acquire) && lock(&shared.log).written == target {
            return;
        }
    }
}

/// A poisoned lock only means another request panicked mid-way; the state
/// it guards is a counter and a queue, still consistent, so carry on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn article_prefix(article: &ArticleId) -> Vec<u8> {
    let mut key = Vec::with_capacity(article.as_str().len() + 10);
    key.push(PUBLISHED);
    key.extend_from_slice(article.as_str().as_bytes());
    key.push(0);
    key
}

fn published_key(article: &ArticleId, id: CommentId) -> Vec<u8> {
    let mut key = article_prefix(article);
    key.extend_from_slice(&id.position().to_be_bytes());
    key
}

fn index_key(id: CommentId) -> [u8; 9] {
    prefixed_id(INDEX, id)
}

fn held_key(id: CommentId) -> [u8; 9] {
    prefixed_id(HELD, id)
}

fn prefixed_id(prefix: u8, id: CommentId) -> [u8; 9] {
    let mut key = [prefix; 9];
    key[1..].copy_from_slice(&id.position().to_be_bytes());
    key
}

fn idempotency_key(client_id: &ClientId, key: &IdempotencyKey) -> Vec<u8> {
    let mut bytes = vec![IDEMPOTENCY];
    bytes.extend_from_slice(client_id.as_str().as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(key.as_str().as_bytes());
    bytes
}

fn decode_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0; 8];
    let n = bytes.len().min(8);
    buf[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u64::from_be_bytes(buf)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("domain types always serialise")
}

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}
