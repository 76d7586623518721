//! The durable store: comments, moderation state and the audit log on local
//! disk in sled, with group commit.
//!
//! # Key layout (one sled tree, `comments.v1`)
//! Everything lives in one tree so each change is one atomic `apply_batch`:
//! a comment, its indexes, its audit entry and its idempotency record land
//! together or not at all.
//!
//! | key                                   | value                                   |
//! |---------------------------------------|-----------------------------------------|
//! | `l` article `\0` position (u64 BE)    | the article's log: published / redacted / removed |
//! | `i` id (u64 BE)                       | where a comment is ([`Location`])       |
//! | `h` id                                | held comment and its verdict            |
//! | `g` article `\0` id                   | held-comment index by article           |
//! | `c` client_id `\0` id                 | published comments by client (for bans) |
//! | `k` client_id `\0` idempotency_key    | the first response to that key          |
//! | `s` article                           | article settings                        |
//! | `t` client_id                         | comments of that client a moderator approved |
//! | `w` term                              | blocked or allowed term                 |
//! | `b` client_id                         | ban                                     |
//! | `u` seq (u64 BE)                      | audit event (append-only)               |
//! | `va` article `\0` seq, `vc` id seq    | audit indexes                           |
//!
//! Article and client ids cannot contain `\0` (validation), so each prefix
//! scan is exact, and an article's log is one ordered scan.
//!
//! # Positions
//! Comment ids, removal events and audit entries take numbers from sled's
//! `generate_id` under one write lock, so numbers order all writes. It
//! never hands out a number twice, even after a crash (it skips ahead on
//! recovery), so there may be gaps. A comment's id is the position of its
//! publication (or, while held, of its submission: approval publishes it
//! under a new id, and the held id then points to it). Subscribers use
//! positions as cursors.
//!
//! # Durability: group commit
//! sled 0.34.7's `flush_async()` can hang when many callers use it at once
//! (sled#1308), and one blocking `flush()` per request halves throughput.
//! Instead one flusher task runs the blocking `flush()` on the blocking pool
//! and then wakes every writer whose batch was applied before that flush
//! started. Only then is a write acknowledged and its events handed to the
//! commit listener (the live hub), in position order.
//!
//! sled's flush writes its log with `write` + `sync_file_range`, not `fsync`:
//! an acknowledged write survives a crash of the process (kill -9, OOM,
//! panic) because its bytes are in the kernel's page cache. After a power
//! cut or kernel crash the last moments of writes may be lost, because
//! `sync_file_range` flushes neither the drive's cache nor file metadata.
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

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};

use crate::domain::{
    ArticleEvent, ArticleId, ArticleSettings, AuditAction, AuditEvent, Ban, ClientId, Comment,
    CommentId, CommentState, Decision, FILTER_ACTOR, IdempotencyKey, ModerationAction, Submission,
    Term, Verdict,
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
    #[error("{0}")]
    NotFound(String),
    /// The thing exists but is in the wrong state for the change.
    #[error("{0}")]
    WrongState(String),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Called by the flusher with the events that just became durable (in
/// position order) and the highest position now on disk.
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

/// Where a comment id stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Location {
    Published(ArticleId),
    Held(ArticleId),
    /// A held comment a moderator approved: it is published under this id.
    ApprovedAs(CommentId),
    Rejected,
    Removed(ArticleId),
}

/// One entry of an article's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum LogEntry {
    Published(Comment),
    /// A publication whose comment was later removed: its text is gone.
    Redacted,
    Removed {
        comment_id: CommentId,
    },
}

/// What `record_submission` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The submission was recorded; `comment` is set when it was stored.
    New { comment: Option<Comment> },
    /// The idempotency key was already used: here is the first response.
    Replayed(IdempotencyRecord),
}

/// The result of looking a comment up by id (following an approval).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Published(Comment),
    Held(Box<HeldComment>),
    /// Rejected or removed.
    Gone,
    Missing,
}

/// A page of something, and whether more follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub more: bool,
}

/// Which audit events to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditFilter {
    All,
    Article(ArticleId),
    Comment(CommentId),
}

const LOG: u8 = b'l';
const LOCATION: u8 = b'i';
const HELD: u8 = b'h';
const HELD_BY_ARTICLE: u8 = b'g';
const BY_CLIENT: u8 = b'c';
const IDEMPOTENCY: u8 = b'k';
const SETTINGS: u8 = b's';
const TRUST: u8 = b't';
const TERM: u8 = b'w';
const BAN: u8 = b'b';
const AUDIT: u8 = b'u';
const AUDIT_BY_ARTICLE: &[u8] = b"va";
const AUDIT_BY_COMMENT: &[u8] = b"vc";

/// sled's page cache when not configured: 256 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// The durable store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    db: sled::Db,
    tree: sled::Tree,
    idempotency_ttl: Duration,
    /// Serialises writes so positions, batches and events share one order.
    log: Mutex<LogState>,
    wake_flusher: Notify,
    durable: watch::Receiver<DurableState>,
    closing: AtomicBool,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

struct LogState {
    last_position: u64,
    /// Number of batches applied so far: a writer's ticket for durability.
    written: u64,
    /// Events applied but not yet flushed, in position order.
    pending: Vec<ArticleEvent>,
}

#[derive(Debug, Clone, Copy, Default)]
struct DurableState {
    /// Every batch with a ticket up to this one is on disk.
    flushed: u64,
    /// The flush covering tickets up to this one failed.
    failed_through: u64,
}

/// A change being built under the write lock: a batch, the events it
/// publishes, and new positions.
pub struct WriteTx<'a> {
    shared: &'a Shared,
    batch: sled::Batch,
    events: Vec<ArticleEvent>,
    last_position: u64,
    touched: bool,
}

impl WriteTx<'_> {
    fn next_position(&mut self) -> Result<u64> {
        let position = self.shared.db.generate_id()? + 1;
        self.last_position = position;
        self.touched = true;
        Ok(position)
    }

    fn put<T: Serialize>(&mut self, key: impl AsRef<[u8]>, value: &T) {
        self.batch.insert(key.as_ref(), encode(value));
        self.touched = true;
    }

    fn put_raw(&mut self, key: impl AsRef<[u8]>, value: &[u8]) {
        self.batch.insert(key.as_ref(), value);
        self.touched = true;
    }

    fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.batch.remove(key.as_ref());
        self.touched = true;
    }

    /// Reads committed state (not this transaction's own writes).
    fn get<T: DeserializeOwned>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>> {
        get(&self.shared.tree, key.as_ref())
    }

    fn audit(&mut self, mut event: AuditEvent) -> Result<()> {
        event.id = self.next_position()?;
        let seq = event.id.to_be_bytes();
        if let Some(article) = &event.article_id {
            self.put_raw(
                [AUDIT_BY_ARTICLE, article.as_str().as_bytes(), &[0], &seq].concat(),
                &[],
            );
        }
        if let Some(comment) = event.comment_id {
            self.put_raw(
                [AUDIT_BY_COMMENT, &comment.position().to_be_bytes(), &seq].concat(),
                &[],
            );
        }
        self.put([&[AUDIT][..], &seq].concat(), &event);
        Ok(())
    }

    fn publish(&mut self, comment: &Comment) {
        self.put(
            log_key(&comment.article_id, comment.id.position()),
            &LogEntry::Published(comment.clone()),
        );
        self.put(
            location_key(comment.id),
            &Location::Published(comment.article_id.clone()),
        );
        self.put_raw(by_client_key(&comment.client_id, comment.id), &[]);
        self.events.push(ArticleEvent::Published(comment.clone()));
    }

    fn hold(&mut self, held: &HeldComment) {
        let comment = &held.comment;
        self.put(held_key(comment.id), held);
        self.put_raw(held_by_article_key(&comment.article_id, comment.id), &[]);
        self.put(
            location_key(comment.id),
            &Location::Held(comment.article_id.clone()),
        );
    }

    fn unhold(&mut self, comment: &Comment) {
        self.remove(held_key(comment.id));
        self.remove(held_by_article_key(&comment.article_id, comment.id));
    }

    /// Removes a published comment: redacts its log entry and appends a
    /// removal event.
    fn remove_published(&mut self, comment: &Comment) -> Result<()> {
        let position = self.next_position()?;
        self.put(
            log_key(&comment.article_id, comment.id.position()),
            &LogEntry::Redacted,
        );
        self.put(
            log_key(&comment.article_id, position),
            &LogEntry::Removed {
                comment_id: comment.id,
            },
        );
        self.put(
            location_key(comment.id),
            &Location::Removed(comment.article_id.clone()),
        );
        self.remove(by_client_key(&comment.client_id, comment.id));
        self.events.push(ArticleEvent::Removed {
            article_id: comment.article_id.clone(),
            comment_id: comment.id,
            position,
        });
        Ok(())
    }
}

fn audit_entry(actor: &str, action: AuditAction) -> AuditEvent {
    AuditEvent {
        id: 0,
        time: SystemTime::now(),
        actor: actor.to_owned(),
        action,
        article_id: None,
        comment_id: None,
        client_id: None,
        decision: None,
        reasons: Vec::new(),
        note: String::new(),
    }
}

impl Store {
    /// Opens (or creates) the store in `path` and starts its flusher task.
    /// Must be called inside a tokio runtime.
    pub fn open(path: &Path, idempotency_ttl: Duration, on_commit: CommitListener) -> Result<Self> {
        Self::open_with_cache(path, idempotency_ttl, DEFAULT_CACHE_BYTES, on_commit)
    }

    /// `open`, with the size of sled's page cache in bytes.
    pub fn open_with_cache(
        path: &Path,
        idempotency_ttl: Duration,
        cache_bytes: u64,
        on_commit: CommitListener,
    ) -> Result<Self> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()?;
        let tree = db.open_tree("comments.v1")?;
        let last_position = [LOCATION, AUDIT]
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
                last_position,
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

    /// The highest position handed out so far (0 when the store is empty).
    pub fn last_position(&self) -> u64 {
        lock(&self.shared.log).last_position
    }

    /// Runs `build` under the write lock, applies its batch atomically and
    /// returns once the batch is on disk (its events then go to the hub).
    async fn write<T>(&self, build: impl FnOnce(&mut WriteTx<'_>) -> Result<T>) -> Result<T> {
        let shared = &*self.shared;
        let (ticket, value) = {
            let mut log = lock(&shared.log);
            if shared.closing.load(Ordering::Acquire) {
                return Err(StoreError::Closed);
            }
            let mut tx = WriteTx {
                shared,
                batch: sled::Batch::default(),
                events: Vec::new(),
                last_position: log.last_position,
                touched: false,
            };
            let value = build(&mut tx)?;
            if !tx.touched {
                return Ok(value);
            }
            let WriteTx {
                batch,
                events,
                last_position,
                ..
            } = tx;
            shared.tree.apply_batch(batch)?;
            log.last_position = last_position;
            log.written += 1;
            log.pending.extend(events);
            (log.written, value)
        };
        shared.wake_flusher.notify_one();
        self.wait_durable(ticket).await?;
        Ok(value)
    }

    async fn wait_durable(&self, ticket: u64) -> Result<()> {
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

    /// Looks up the first response to an idempotency key, if it is still
    /// remembered.
    pub fn idempotency_record(
        &self,
        client_id: &ClientId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>> {
        let record: Option<IdempotencyRecord> =
            get(&self.shared.tree, &idempotency_key(client_id, key))?;
        Ok(record.filter(|record| {
            let age = SystemTime::now()
                .duration_since(record.recorded_at)
                .unwrap_or_default();
            age <= self.shared.idempotency_ttl
        }))
    }

    /// Records a screened submission: an approved comment is published, a
    /// held one is kept for moderators, a rejected one stores nothing but
    /// its idempotency record and audit entry. Returns once it is on disk.
    ///
    /// The idempotency key is checked again under the write lock, so two
    /// concurrent calls with the same key store one comment between them.
    pub async fn record_submission(
        &self,
        submission: &Submission,
        verdict: &Verdict,
    ) -> Result<Recorded> {
        self.write(|tx| {
            if let Some(key) = &submission.idempotency_key
                && let Some(record) = self.idempotency_record(&submission.client_id, key)?
            {
                return Ok(Recorded::Replayed(record));
            }
            let comment = match verdict.decision {
                Decision::Rejected => None,
                decision => {
                    let comment = Comment {
                        id: CommentId::new(tx.next_position()?),
                        article_id: submission.article_id.clone(),
                        author_name: submission.author_name.clone(),
                        text: submission.text.clone(),
                        parent_id: submission.parent_id,
                        client_id: submission.client_id.clone(),
                        created_at: SystemTime::now(),
                        state: if decision == Decision::Approved {
                            CommentState::Published
                        } else {
                            CommentState::Held
                        },
                    };
                    match comment.state {
                        CommentState::Published => tx.publish(&comment),
                        CommentState::Held => tx.hold(&HeldComment {
                            comment: comment.clone(),
                            verdict: verdict.clone(),
                        }),
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
                tx.put(idempotency_key(&submission.client_id, key), &record);
            }
            let mut audit = audit_entry(FILTER_ACTOR, AuditAction::Screened);
            audit.article_id = Some(submission.article_id.clone());
            audit.comment_id = comment.as_ref().map(|c| c.id);
            audit.client_id = Some(submission.client_id.clone());
            audit.decision = Some(verdict.decision);
            audit.reasons = verdict.reasons.clone();
            tx.audit(audit)?;
            Ok(Recorded::New { comment })
        })
        .await
    }

    /// A moderator's action on a comment. Approving publishes a held comment
    /// under a new id (its position now); rejecting drops a held comment;
    /// removing takes a published comment down with a removal event.
    pub async fn moderate(
        &self,
        id: CommentId,
        action: ModerationAction,
        actor: &str,
        note: &str,
    ) -> Result<Comment> {
        self.write(|tx| {
            let location: Location = tx
                .get(location_key(id))?
                .ok_or_else(|| StoreError::NotFound(format!("comment {id} not found")))?;
            let verb = match action {
                ModerationAction::Approve => "approved",
                ModerationAction::Reject => "rejected",
                ModerationAction::Remove => "removed",
            };
            let wrong_state = |what: &str| {
                StoreError::WrongState(format!("comment {id} is {what}; it cannot be {verb}"))
            };
            let (comment, audit_action) = match (action, location) {
                (ModerationAction::Approve | ModerationAction::Reject, Location::Held(_)) => {
                    let held: HeldComment = tx.get(held_key(id))?.ok_or_else(|| {
                        StoreError::NotFound(format!("held comment {id} is missing"))
                    })?;
                    tx.unhold(&held.comment);
                    if action == ModerationAction::Approve {
                        let mut comment = held.comment;
                        comment.id = CommentId::new(tx.next_position()?);
                        comment.state = CommentState::Published;
                        tx.publish(&comment);
                        tx.put(location_key(id), &Location::ApprovedAs(comment.id));
                        let trust: u64 = tx.get(trust_key(&comment.client_id))?.unwrap_or(0);
                        tx.put(trust_key(&comment.client_id), &(trust + 1));
                        (comment, AuditAction::Approved)
                    } else {
                        tx.put(location_key(id), &Location::Rejected);
                        (held.comment, AuditAction::Rejected)
                    }
                }
                (ModerationAction::Remove, Location::Published(article)) => {
                    let comment = published(tx.get(log_key(&article, id.position()))?, id)?;
                    tx.remove_published(&comment)?;
                    (comment, AuditAction::Removed)
                }
                (_, Location::Held(_)) => return Err(wrong_state("held")),
                (_, Location::Published(_)) => return Err(wrong_state("published")),
                (_, Location::ApprovedAs(new_id)) => {
                    return Err(wrong_state(&format!("already approved (now {new_id})")));
                }
                (_, Location::Rejected) => return Err(wrong_state("already rejected")),
                (_, Location::Removed(_)) => return Err(wrong_state("already removed")),
            };
            let mut audit = audit_entry(actor, audit_action);
            audit.article_id = Some(comment.article_id.clone());
            audit.comment_id = Some(id);
            audit.client_id = Some(comment.client_id.clone());
            audit.note = note.to_owned();
            tx.audit(audit)?;
            if comment.id != id {
                // The approved comment's new id leads to the same history
                // (the audit entry just written has the last position).
                tx.put_raw(
                    [
                        AUDIT_BY_COMMENT,
                        &comment.id.position().to_be_bytes(),
                        &tx.last_position.to_be_bytes(),
                    ]
                    .concat(),
                    &[],
                );
            }
            Ok(comment)
        })
        .await
    }

    /// Finds a comment by id, following an approval to the published comment.
    pub fn lookup(&self, id: CommentId) -> Result<Lookup> {
        let tree = &self.shared.tree;
        let mut id = id;
        for _ in 0..2 {
            let location: Option<Location> = get(tree, &location_key(id))?;
            return match location {
                None => Ok(Lookup::Missing),
                Some(Location::Published(article)) => Ok(Lookup::Published(published(
                    get(tree, &log_key(&article, id.position()))?,
                    id,
                )?)),
                Some(Location::Held(_)) => match get(tree, &held_key(id))? {
                    Some(held) => Ok(Lookup::Held(Box::new(held))),
                    None => Ok(Lookup::Missing),
                },
                Some(Location::ApprovedAs(new_id)) => {
                    id = new_id;
                    continue;
                }
                Some(Location::Rejected | Location::Removed(_)) => Ok(Lookup::Gone),
            };
        }
        Ok(Lookup::Missing)
    }

    /// Approved comments of `article` after `after`, oldest first.
    pub fn published_after(
        &self,
        article: &ArticleId,
        after: Option<CommentId>,
        limit: usize,
    ) -> Result<Page<Comment>> {
        let start = log_key(article, after.map_or(0, |id| id.position() + 1));
        let mut items = Vec::with_capacity(limit.min(256));
        for entry in self.shared.tree.range(start..log_end(article)) {
            let (key, bytes) = entry?;
            if let LogEntry::Published(comment) = decode(&key, &bytes)? {
                if items.len() == limit {
                    return Ok(Page { items, more: true });
                }
                items.push(comment);
            }
        }
        Ok(Page { items, more: false })
    }

    /// The article's events with positions in `(after, through]`, at most
    /// `limit` log entries read.
    pub fn events_after(
        &self,
        article: &ArticleId,
        after: u64,
        through: u64,
        limit: usize,
    ) -> Result<(Vec<ArticleEvent>, Option<u64>)> {
        let start = log_key(article, after.saturating_add(1));
        let end = log_key(article, through.saturating_add(1));
        let mut events = Vec::new();
        let mut last_read = None;
        for entry in self.shared.tree.range(start..end).take(limit) {
            let (key, bytes) = entry?;
            let position = decode_u64(&key[key.len() - 8..]);
            last_read = Some(position);
            match decode(&key, &bytes)? {
                LogEntry::Published(comment) => events.push(ArticleEvent::Published(comment)),
                LogEntry::Redacted => {}
                LogEntry::Removed { comment_id } => events.push(ArticleEvent::Removed {
                    article_id: article.clone(),
                    comment_id,
                    position,
                }),
            }
        }
        Ok((events, last_read))
    }

    /// The review queue, oldest first, optionally for one article.
    pub fn held_after(
        &self,
        article: Option<&ArticleId>,
        after: Option<CommentId>,
        limit: usize,
    ) -> Result<Page<HeldComment>> {
        let tree = &self.shared.tree;
        let from = CommentId::new(after.map_or(0, |id| id.position() + 1));
        // Both indexes end their keys with the id.
        let (prefix, start) = match article {
            Some(article) => {
                let start = held_by_article_key(article, from);
                (start[..start.len() - 8].to_vec(), start)
            }
            None => (vec![HELD], held_key(from).to_vec()),
        };
        let ids = tree
            .range(start..)
            .map(|entry| entry.map(|(key, _)| key))
            .take_while(|key| key.as_ref().map_or(true, |key| key.starts_with(&prefix)))
            .map(|key| Ok::<_, StoreError>(CommentId::new(decode_u64(&key?))));
        let mut items = Vec::new();
        for id in ids {
            let id = id?;
            if items.len() == limit {
                return Ok(Page { items, more: true });
            }
            if let Some(held) = get(tree, &held_key(id))? {
                items.push(held);
            }
        }
        Ok(Page { items, more: false })
    }

    /// How many of a client's comments moderators have approved.
    pub fn approved_by_moderators(&self, client: &ClientId) -> Result<u64> {
        Ok(get(&self.shared.tree, &trust_key(client))?.unwrap_or(0))
    }

    /// An article's settings (defaults when never set).
    pub fn article(&self, article: &ArticleId) -> Result<ArticleSettings> {
        Ok(get(&self.shared.tree, &settings_key(article))?.unwrap_or_default())
    }

    pub async fn update_article(
        &self,
        article: &ArticleId,
        settings: &ArticleSettings,
        actor: &str,
    ) -> Result<()> {
        self.write(|tx| {
            tx.put(settings_key(article), settings);
            let mut audit = audit_entry(actor, AuditAction::ArticleUpdated);
            audit.article_id = Some(article.clone());
            audit.note = format!("{settings:?}");
            tx.audit(audit)
        })
        .await
    }

    /// Every term, in term order.
    pub fn terms(&self) -> Result<Vec<Term>> {
        self.shared
            .tree
            .scan_prefix([TERM])
            .map(|entry| {
                let (key, bytes) = entry?;
                decode(&key, &bytes)
            })
            .collect()
    }

    /// Adds (or replaces) terms.
    pub async fn add_terms(&self, terms: &[Term], actor: &str) -> Result<()> {
        self.write(|tx| {
            for term in terms {
                tx.put(term_key(&term.text), term);
            }
            let mut audit = audit_entry(actor, AuditAction::TermsAdded);
            audit.note = describe_terms(terms.iter().map(|t| t.text.as_str()));
            tx.audit(audit)
        })
        .await
    }

    /// Removes terms; returns how many existed.
    pub async fn remove_terms(&self, texts: &[String], actor: &str) -> Result<usize> {
        self.write(|tx| {
            let mut removed = 0;
            for text in texts {
                if tx.get::<Term>(term_key(text))?.is_some() {
                    removed += 1;
                }
                tx.remove(term_key(text));
            }
            let mut audit = audit_entry(actor, AuditAction::TermsRemoved);
            audit.note = describe_terms(texts.iter().map(String::as_str));
            tx.audit(audit)?;
            Ok(removed)
        })
        .await
    }

    /// The ban of a client, if any (expired or not).
    pub fn ban_of(&self, client: &ClientId) -> Result<Option<Ban>> {
        get(&self.shared.tree, &ban_key(client))
    }

    /// Every ban, in client order.
    pub fn bans(&self) -> Result<Vec<Ban>> {
        self.shared
            .tree
            .scan_prefix([BAN])
            .map(|entry| {
                let (key, bytes) = entry?;
                decode(&key, &bytes)
            })
            .collect()
    }

    /// Bans a client; optionally removes all its published comments (each
    /// with a removal event). Returns the removed comments' ids.
    pub async fn ban(&self, ban: &Ban, remove_comments: bool) -> Result<Vec<CommentId>> {
        self.write(|tx| {
            tx.put(ban_key(&ban.client_id), ban);
            let mut audit = audit_entry(&ban.created_by, AuditAction::ClientBanned);
            audit.client_id = Some(ban.client_id.clone());
            audit.note = ban.reason.clone();
            tx.audit(audit)?;
            let mut removed = Vec::new();
            if remove_comments {
                let prefix = by_client_prefix(&ban.client_id);
                for entry in self.shared.tree.scan_prefix(&prefix) {
                    let (key, _) = entry?;
                    let id = CommentId::new(decode_u64(&key[prefix.len()..]));
                    if let Lookup::Published(comment) = self.lookup(id)? {
                        tx.remove_published(&comment)?;
                        let mut audit = audit_entry(&ban.created_by, AuditAction::Removed);
                        audit.article_id = Some(comment.article_id.clone());
                        audit.comment_id = Some(id);
                        audit.client_id = Some(ban.client_id.clone());
                        audit.note = format!("client banned: {}", ban.reason);
                        tx.audit(audit)?;
                        removed.push(id);
                    }
                }
            }
            Ok(removed)
        })
        .await
    }

    /// Lifts a ban; `NotFound` when there was none.
    pub async fn unban(&self, client: &ClientId, actor: &str) -> Result<()> {
        self.write(|tx| {
            if tx.get::<Ban>(ban_key(client))?.is_none() {
                return Err(StoreError::NotFound(format!(
                    "client {} is not banned",
                    client.as_str()
                )));
            }
            tx.remove(ban_key(client));
            let mut audit = audit_entry(actor, AuditAction::ClientUnbanned);
            audit.client_id = Some(client.clone());
            tx.audit(audit)
        })
        .await
    }

    /// Audit events after `after` (by id), oldest first.
    pub fn audit_after(
        &self,
        filter: &AuditFilter,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<AuditEvent>> {
        let tree = &self.shared.tree;
        let from = after.map_or(0, |seq| seq + 1).to_be_bytes();
        let prefix: Vec<u8> = match filter {
            AuditFilter::All => vec![AUDIT],
            AuditFilter::Article(article) => {
                [AUDIT_BY_ARTICLE, article.as_str().as_bytes(), &[0]].concat()
            }
            AuditFilter::Comment(id) => {
                [AUDIT_BY_COMMENT, &id.position().to_be_bytes()[..]].concat()
            }
        };
        let mut items = Vec::new();
        for entry in tree.range([prefix.as_slice(), &from].concat()..) {
            let (key, bytes) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            if items.len() == limit {
                return Ok(Page { items, more: true });
            }
            let event = if matches!(filter, AuditFilter::All) {
                decode(&key, &bytes)?
            } else {
                let seq = &key[key.len() - 8..];
                match get(tree, &[&[AUDIT][..], seq].concat())? {
                    Some(event) => event,
                    None => continue,
                }
            };
            items.push(event);
        }
        Ok(Page { items, more: false })
    }

    /// Flushes what is pending, stops the flusher and refuses further writes.
    pub async fn close(&self) -> Result<()> {
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

fn describe_terms<'a>(terms: impl Iterator<Item = &'a str>) -> String {
    terms.collect::<Vec<_>>().join(", ")
}

fn published(entry: Option<LogEntry>, id: CommentId) -> Result<Comment> {
    match entry {
        Some(LogEntry::Published(comment)) => Ok(comment),
        _ => Err(StoreError::NotFound(format!("comment {id} not found"))),
    }
}

/// The group-commit loop: flush, then acknowledge and publish in order.
async fn run_flusher(
    shared: Arc<Shared>,
    durable: watch::Sender<DurableState>,
    on_commit: CommitListener,
) {
    loop {
        shared.wake_flusher.notified().await;
        let (target, events, last_position) = {
            let mut log = lock(&shared.log);
            (
                log.written,
                std::mem::take(&mut log.pending),
                log.last_position,
            )
        };
        let done = {
            let state = durable.borrow();
            state.flushed.max(state.failed_through)
        };
        if target > done {
            let db = shared.db.clone();
            match tokio::task::spawn_blocking(move || db.flush()).await {
                Ok(Ok(_)) => {
                    on_commit(&events, last_position);
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

fn log_key(article: &ArticleId, position: u64) -> Vec<u8> {
    [
        &[LOG],
        article.as_str().as_bytes(),
        &[0],
        &position.to_be_bytes(),
    ]
    .concat()
}

fn log_end(article: &ArticleId) -> Vec<u8> {
    [&[LOG], article.as_str().as_bytes(), &[1]].concat()
}

fn location_key(id: CommentId) -> [u8; 9] {
    prefixed_id(LOCATION, id)
}

fn held_key(id: CommentId) -> [u8; 9] {
    prefixed_id(HELD, id)
}

fn held_by_article_key(article: &ArticleId, id: CommentId) -> Vec<u8> {
    [
        &[HELD_BY_ARTICLE],
        article.as_str().as_bytes(),
        &[0],
        &id.position().to_be_bytes(),
    ]
    .concat()
}

fn by_client_prefix(client: &ClientId) -> Vec<u8> {
    [&[BY_CLIENT], client.as_str().as_bytes(), &[0]].concat()
}

fn by_client_key(client: &ClientId, id: CommentId) -> Vec<u8> {
    [
        by_client_prefix(client),
        id.position().to_be_bytes().to_vec(),
    ]
    .concat()
}

fn settings_key(article: &ArticleId) -> Vec<u8> {
    [&[SETTINGS], article.as_str().as_bytes()].concat()
}

fn trust_key(client: &ClientId) -> Vec<u8> {
    [&[TRUST], client.as_str().as_bytes()].concat()
}

fn term_key(text: &str) -> Vec<u8> {
    [&[TERM], text.as_bytes()].concat()
}

fn ban_key(client: &ClientId) -> Vec<u8> {
    [&[BAN], client.as_str().as_bytes()].concat()
}

fn prefixed_id(prefix: u8, id: CommentId) -> [u8; 9] {
    let mut key = [prefix; 9];
    key[1..].copy_from_slice(&id.position().to_be_bytes());
    key
}

fn idempotency_key(client_id: &ClientId, key: &IdempotencyKey) -> Vec<u8> {
    [
        &[IDEMPOTENCY],
        client_id.as_str().as_bytes(),
        &[0],
        key.as_str().as_bytes(),
    ]
    .concat()
}

/// The big-endian u64 in the last eight bytes of `bytes`.
fn decode_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0; 8];
    let n = bytes.len().min(8);
    buf[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u64::from_be_bytes(buf)
}

fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>> {
    match tree.get(key)? {
        Some(bytes) => decode(key, &bytes).map(Some),
        None => Ok(None),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("domain types always serialise")
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}
