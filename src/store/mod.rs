//! The durable store: a log of events ([`CommentLog`]) and the views derived
//! from it.
//!
//! - [`log`]: the seam, [`CommentLog`]: append (durable, conditional,
//!   deduplicated), read after a position, watch the committed position.
//! - [`sled_log`]: the embedded log (sled, group commit, `fdatasync`).
//! - [`event`]: what the log records, in a compact binary encoding.
//! - [`views`]: listings, held queue, statuses, settings, terms, bans and
//!   audit indexes, held in memory and applied by one materialiser from
//!   committed events (rebuilt from the log on every start).
//! - [`migrate`]: the format version, and data dirs of earlier versions.
//!
//! The use cases (`comments`, `moderators`) decide what happens and hand the
//! store events; the store records them and answers queries. An append is
//! acknowledged once its events are durable **and** applied to the views, so
//! a read right after it sees it; the materialiser also feeds the live hub,
//! in position order, so nothing reaches a subscriber before it is durable.

#[cfg(test)]
mod conformance;
pub mod event;
pub mod log;
pub(crate) mod migrate;
#[cfg(feature = "nats")]
pub mod nats_log;
pub mod sled_log;
pub mod views;

use std::{
    path::Path,
    sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard},
    thread,
    time::Duration,
};

use tokio::sync::watch;

use crate::metrics::CommitMetrics;

pub use event::{Event, Moderated, Submitted};
pub use log::{Append, Appended, CommentLog, LogError, Writability};
pub use sled_log::{SledLog, SledLogOptions};
pub use views::{BanRecord, Status};

use crate::domain::{
    ArticleEvent, ArticleId, ArticleSettings, AuditEvent, AuditFilter, Ban, ClientId, Comment,
    CommentId, CommentState, Decision, HeldComment, ModerationAction, Term,
};
use views::{Change, ListingEntry, Views};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error(transparent)]
    Log(#[from] LogError),
    /// The data dir was written by a newer commentd, or is not readable.
    #[error("{0}")]
    Format(String),
    #[error("applying committed events to the views failed: {0}")]
    ViewsFailed(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("{0}")]
    NotFound(String),
    /// The thing exists but is in the wrong state for the change.
    #[error("{0}")]
    WrongState(String),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Called by the materialiser with the article events that just became
/// durable and visible (in position order) and the highest position applied.
pub type CommitListener = Box<dyn Fn(&[ArticleEvent], u64) + Send + Sync>;

/// sled's page cache when not configured (bytes).
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// Committed events applied to the views per batch.
const MATERIALISE_CHUNK: usize = 1024;

/// The key a comment's moderation events name: each comment has at most one
/// (approval, rejection or removal are final), so a moderator's append
/// expects none, and of two moderators acting at once one gets a conflict.
pub fn comment_key(id: CommentId) -> String {
    format!("comment/{id}")
}

/// The key a client's ban events name.
pub fn client_key(client: &ClientId) -> String {
    format!("client/{}", client.as_str())
}

/// The dedup id of an idempotency key.
pub fn idempotency_id(client: &str, key: &str) -> String {
    format!("{client}\0{key}")
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

#[derive(Debug, Clone, Default)]
struct ViewsState {
    applied: u64,
    failed: Option<String>,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    db: sled::Db,
    views: Arc<RwLock<Views>>,
    log: Arc<dyn CommentLog>,
    state: watch::Receiver<ViewsState>,
    stop: watch::Sender<bool>,
    materialiser: Mutex<Option<thread::JoinHandle<()>>>,
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
    /// sled's page cache in bytes.
    pub cache_bytes: u64,
    /// Free space kept on the data disk: below it writes are refused with
    /// UNAVAILABLE until space is freed.
    pub min_free_bytes: u64,
    /// Where the log writer reports its group commits.
    pub commit_metrics: CommitMetrics,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            idempotency_ttl: Duration::from_secs(24 * 3600),
            cache_bytes: DEFAULT_CACHE_BYTES,
            min_free_bytes: sled_log::DEFAULT_MIN_FREE_BYTES,
            commit_metrics: CommitMetrics::default(),
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `path`: checks the format (migrating
    /// an earlier one), brings the views up to the log, and starts the log
    /// writer and the materialiser. Must be called inside a tokio runtime.
    pub fn open(path: &Path, options: &StoreOptions, on_commit: CommitListener) -> Result<Self> {
        let db = Self::open_db(path, options)?;
        let log = SledLog::open_with(
            &db,
            path,
            SledLogOptions {
                duplicate_window: options.idempotency_ttl,
                min_free_bytes: options.min_free_bytes,
                metrics: options.commit_metrics.clone(),
            },
        )?;
        Self::with_log(db, Arc::new(log), on_commit)
    }

    /// Opens the store over a NATS JetStream log shared with other
    /// replicas: this data dir holds this replica's mirror of the stream and
    /// its views (a cache, derived again from the stream if lost).
    #[cfg(feature = "nats")]
    pub async fn open_nats(
        path: &Path,
        options: &StoreOptions,
        nats: nats_log::NatsLogOptions,
        on_commit: CommitListener,
    ) -> Result<Self> {
        let db = Self::open_db(path, options)?;
        if !db.open_tree(sled_log::TREE)?.is_empty() {
            return Err(StoreError::Format(format!(
                "{} holds an embedded (sled) log: publish it to the stream with `commentd migrate-to-nats`, then start each replica with an empty data dir",
                path.display()
            )));
        }
        let log = nats_log::NatsLog::open(&db, nats).await?;
        Self::with_log(db, Arc::new(log), on_commit)
    }

    /// sled in `path`, in the current format.
    pub(crate) fn open_db(path: &Path, options: &StoreOptions) -> Result<sled::Db> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            .open()?;
        migrate::to_current(&db)?;
        Ok(db)
    }

    /// The store over `log`, its views in `db`.
    pub fn with_log(
        db: sled::Db,
        log: Arc<dyn CommentLog>,
        on_commit: CommitListener,
    ) -> Result<Self> {
        if db.drop_tree(views::LEGACY_TREE)? {
            tracing::info!(
                "dropped the views an earlier version wrote to disk: they are held in memory now"
            );
        }
        let views = Arc::new(RwLock::new(Views::default()));
        let (state_tx, state) = watch::channel(ViewsState::default());
        let (stop, stop_rx) = watch::channel(false);
        let materialiser = Materialiser {
            views: views.clone(),
            log: log.clone(),
            state: state_tx,
            on_commit,
        };
        // Catch up before serving, so queries never see views behind what
        // was acknowledged before a restart.
        materialiser.catch_up()?;
        let runtime = tokio::runtime::Handle::current();
        let handle = thread::Builder::new()
            .name("commentd-views".to_owned())
            .spawn(move || materialiser.run(&runtime, stop_rx))
            .map_err(|error| StoreError::ViewsFailed(format!("starting: {error}")))?;
        Ok(Self {
            shared: Arc::new(Shared {
                db,
                views,
                log,
                state,
                stop,
                materialiser: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Appends a batch of events; returns once they are durable and visible
    /// in the views.
    pub async fn append(&self, batch: Vec<Append>) -> Result<Vec<Appended>> {
        let appended = self.shared.log.append(batch).await?;
        if let Some(last) = appended.iter().map(|a| a.position()).max() {
            self.wait_applied(last).await?;
        }
        Ok(appended)
    }

    /// Appends one event (see [`Store::append`]).
    pub async fn append_one(&self, append: Append) -> Result<Appended> {
        let mut appended = self.append(vec![append]).await?;
        appended.pop().ok_or(StoreError::Closed)
    }

    /// Waits until the views show everything the log has committed.
    pub async fn caught_up(&self) -> Result<()> {
        let committed = *self.shared.log.committed().borrow();
        self.wait_applied(committed).await
    }

    /// Waits until the views show the event at `position`.
    pub async fn wait_applied(&self, position: u64) -> Result<()> {
        let mut state = self.shared.state.clone();
        let state = state
            .wait_for(|state| state.applied >= position || state.failed.is_some())
            .await
            .map_err(|_| StoreError::Closed)?;
        match &state.failed {
            Some(error) if state.applied < position => Err(StoreError::ViewsFailed(error.clone())),
            _ => Ok(()),
        }
    }

    /// Whether writes are taken now, watched.
    pub fn writability(&self) -> watch::Receiver<Writability> {
        self.shared.log.writability()
    }

    /// The highest position applied to the views (0 when empty).
    pub fn last_position(&self) -> u64 {
        self.shared.state.borrow().applied
    }

    /// The submission at `position`, if that is one.
    pub fn submission(&self, position: u64) -> Result<Option<Submitted>> {
        Ok(match self.shared.log.get(position)? {
            Some(Event::Submitted(submitted)) => Some(submitted),
            _ => None,
        })
    }

    /// The first append of an idempotency key, if remembered and durable.
    pub fn find_duplicate(&self, dedup_id: &str) -> Result<Option<u64>> {
        Ok(self.shared.log.find_duplicate(dedup_id)?)
    }

    /// Where a comment id stands (without following an approval): the
    /// status view once the comment changed, else what the event at its id
    /// says.
    pub fn status(&self, id: CommentId) -> Result<Option<Status>> {
        Ok(self.status_and_submission(id)?.0)
    }

    /// [`Store::status`], and the submission at `id` when the status was
    /// derived from it (so a lookup does not read it twice).
    fn status_and_submission(&self, id: CommentId) -> Result<(Option<Status>, Option<Submitted>)> {
        let changed = self.views().status(id).cloned();
        if let Some(status) = changed {
            return Ok((Some(status), None));
        }
        if id.position() > self.last_position() {
            return Ok((None, None));
        }
        Ok(match self.shared.log.get(id.position())? {
            Some(Event::Submitted(submitted)) => {
                let article_id = submitted.article_id.clone();
                let status = match submitted.verdict.decision {
                    Decision::Approved => Some(Status::Published {
                        article_id,
                        source: id.position(),
                    }),
                    Decision::Held => Some(Status::Held { article_id }),
                    Decision::Rejected => None,
                };
                (status, Some(submitted))
            }
            Some(Event::Moderated(moderated)) if moderated.action == ModerationAction::Approve => (
                Some(Status::Published {
                    article_id: moderated.article_id,
                    source: moderated.source,
                }),
                None,
            ),
            _ => (None, None),
        })
    }

    /// Finds a comment by id, following an approval to the published comment.
    pub fn lookup(&self, id: CommentId) -> Result<Lookup> {
        let mut id = id;
        for _ in 0..2 {
            let (status, read) = self.status_and_submission(id)?;
            return match status {
                None => Ok(Lookup::Missing),
                Some(Status::Published { source, .. }) => {
                    let read = read.filter(|_| source == id.position());
                    Ok(
                        match self.content(id, source, CommentState::Published, read)? {
                            Some((comment, _)) => Lookup::Published(comment),
                            None => Lookup::Missing,
                        },
                    )
                }
                Some(Status::Held { .. }) => Ok(
                    match self.content(id, id.position(), CommentState::Held, read)? {
                        Some((comment, submitted)) => Lookup::Held(Box::new(HeldComment {
                            comment,
                            verdict: submitted.verdict,
                        })),
                        None => Lookup::Missing,
                    },
                ),
                Some(Status::ApprovedAs(new_id)) => {
                    id = new_id;
                    continue;
                }
                Some(Status::Rejected | Status::Removed { .. }) => Ok(Lookup::Gone),
            };
        }
        Ok(Lookup::Missing)
    }

    /// The comment `id` whose content is the submission at `source` (`read`
    /// when the caller has it already); none once its text was erased (a
    /// removal being committed).
    fn content(
        &self,
        id: CommentId,
        source: u64,
        state: CommentState,
        read: Option<Submitted>,
    ) -> Result<Option<(Comment, Submitted)>> {
        let submitted = match read {
            Some(submitted) => Some(submitted),
            None => self.submission(source)?,
        };
        Ok(submitted
            .filter(|submitted| submitted.text.is_some())
            .map(|submitted| (submitted.comment_as(id, state), submitted)))
    }

    /// Approved comments of `article` after `after`, oldest first.
    pub fn published_after(
        &self,
        article: &ArticleId,
        after: Option<CommentId>,
        limit: usize,
    ) -> Result<Page<Comment>> {
        let from = after.map_or(0, |id| id.position() + 1);
        self.page(
            limit,
            Vec::new(),
            from,
            |views, from, wanted| views.published(article, from, wanted),
            |position, source| {
                let id = CommentId::new(position);
                let found = self.content(id, source, CommentState::Published, None)?;
                Ok(found.map(|(comment, _)| comment))
            },
        )
    }

    /// The article's events with positions in `(after, through]`, at most
    /// `limit` listing entries read; and the last position read.
    pub fn events_after(
        &self,
        article: &ArticleId,
        after: u64,
        through: u64,
        limit: usize,
    ) -> Result<(Vec<ArticleEvent>, Option<u64>)> {
        let entries = self.views().listing(
            article,
            after.saturating_add(1),
            through.saturating_add(1),
            limit,
        );
        let mut events = Vec::with_capacity(entries.len());
        for &(position, entry) in &entries {
            match entry {
                ListingEntry::Published { source } => {
                    let id = CommentId::new(position);
                    if let Some((comment, _)) =
                        self.content(id, source, CommentState::Published, None)?
                    {
                        events.push(ArticleEvent::Published(comment));
                    }
                }
                ListingEntry::Removed { comment_id } => events.push(ArticleEvent::Removed {
                    article_id: article.clone(),
                    comment_id,
                    position,
                }),
            }
        }
        Ok((events, entries.last().map(|&(position, _)| position)))
    }

    /// Comments waiting for a moderator (for metrics).
    pub fn held_count(&self) -> usize {
        self.views().held_count()
    }

    /// The data folder's size on disk, as sled reports it.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.shared.db.size_on_disk()?)
    }

    /// The review queue, oldest first, optionally for one article.
    pub fn held_after(
        &self,
        article: Option<&ArticleId>,
        after: Option<CommentId>,
        limit: usize,
    ) -> Result<Page<HeldComment>> {
        let from = after.map_or(0, |id| id.position() + 1);
        self.page(
            limit,
            Vec::new(),
            from,
            |views, from, wanted| {
                let held = views.held(article, CommentId::new(from), wanted);
                held.into_iter().map(|position| (position, ())).collect()
            },
            |position, ()| {
                Ok(match self.lookup(CommentId::new(position))? {
                    Lookup::Held(held) => Some(*held),
                    _ => None,
                })
            },
        )
    }

    /// The views, for a moment (never held across a read of the log).
    fn views(&self) -> RwLockReadGuard<'_, Views> {
        self.shared
            .views
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Up to `limit` items, `items` first and then one per entry `list`
    /// gives from a position on (its position and what `item` needs to read
    /// it from the log; `None` skips it), and whether more follow. The views
    /// are locked only while `list` copies entries out.
    fn page<K, T>(
        &self,
        limit: usize,
        mut items: Vec<T>,
        mut from: u64,
        list: impl Fn(&Views, u64, usize) -> Vec<(u64, K)>,
        mut item: impl FnMut(u64, K) -> Result<Option<T>>,
    ) -> Result<Page<T>> {
        loop {
            // One more than fits tells whether more follow.
            let wanted = limit.saturating_sub(items.len()) + 1;
            let entries = list(&self.views(), from, wanted);
            let exhausted = entries.len() < wanted;
            for (position, key) in entries {
                if items.len() >= limit {
                    return Ok(Page { items, more: true });
                }
                if let Some(found) = item(position, key)? {
                    items.push(found);
                }
                from = position.saturating_add(1);
            }
            if exhausted {
                return Ok(Page { items, more: false });
            }
        }
    }

    /// How many of a client's comments moderators have approved, counting
    /// at most `up_to`.
    pub fn approved_by_moderators(&self, client: &ClientId, up_to: u64) -> Result<u64> {
        Ok(self.views().approved_by_moderators(client).min(up_to))
    }

    /// A client's published comments, oldest first.
    pub fn published_by(&self, client: &ClientId) -> Result<Vec<CommentId>> {
        Ok(self.views().published_by(client))
    }

    /// An article's settings (defaults when never set).
    pub fn article(&self, article: &ArticleId) -> Result<ArticleSettings> {
        Ok(self.views().settings(article))
    }

    /// Every term, in term order.
    pub fn terms(&self) -> Result<Vec<Term>> {
        Ok(self.views().terms())
    }

    /// The ban of a client, if any (expired or not).
    pub fn ban_of(&self, client: &ClientId) -> Result<Option<BanRecord>> {
        Ok(self.views().ban(client))
    }

    /// Every ban, in client order.
    pub fn bans(&self) -> Result<Vec<Ban>> {
        Ok(self.views().bans())
    }

    /// Audit events after `after` (by id), oldest first. The audit is the
    /// log itself; the views index it by article and by comment.
    pub fn audit_after(
        &self,
        filter: &AuditFilter,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<AuditEvent>> {
        let after = after.unwrap_or(0);
        if let AuditFilter::All = filter {
            let applied = self.last_position();
            let mut events = self.shared.log.read_after(after, limit + 1)?;
            events.retain(|(position, _)| *position <= applied);
            let more = events.len() > limit;
            events.truncate(limit);
            let items = events
                .iter()
                .map(|(position, event)| event.audit(*position))
                .collect();
            return Ok(Page { items, more });
        }
        let mut items = Vec::new();
        // A comment's submission is its first audit entry, at its id.
        if let AuditFilter::Comment(id) = filter
            && id.position() > after
            && limit > 0
            && let Some(event) = self.shared.log.get(id.position())?
            && matches!(&event, Event::Submitted(submitted)
                if submitted.verdict.decision != Decision::Rejected)
        {
            items.push(event.audit(id.position()));
        }
        self.page(
            limit,
            items,
            after.saturating_add(1),
            |views, from, wanted| {
                let positions = views.audit(filter, from, wanted);
                positions
                    .into_iter()
                    .map(|position| (position, ()))
                    .collect()
            },
            |position, ()| {
                Ok(self
                    .shared
                    .log
                    .get(position)?
                    .map(|event| event.audit(position)))
            },
        )
    }

    /// Finishes queued appends, brings the views up to date, stops the
    /// threads and flushes.
    pub async fn close(&self) -> Result<()> {
        self.shared.log.close().await?;
        let _ = self.shared.stop.send(true);
        let handle = self
            .shared
            .materialiser
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|_| StoreError::Closed)?
                .map_err(|_| StoreError::ViewsFailed("the materialiser panicked".to_owned()))?;
        }
        let db = self.shared.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|_| StoreError::Closed)??;
        Ok(())
    }
}

/// Applies committed events to the views, in position order, and tells the
/// hub.
struct Materialiser {
    views: Arc<RwLock<Views>>,
    log: Arc<dyn CommentLog>,
    state: watch::Sender<ViewsState>,
    on_commit: CommitListener,
}

impl Materialiser {
    fn run(self, runtime: &tokio::runtime::Handle, mut stop: watch::Receiver<bool>) {
        let mut committed = self.log.committed();
        loop {
            match self.catch_up() {
                Ok(()) => {}
                Err(error) => {
                    tracing::error!(%error, "applying committed events to the views failed");
                    self.state
                        .send_modify(|state| state.failed = Some(error.to_string()));
                    if *stop.borrow() {
                        return;
                    }
                    thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
            let applied = self.state.borrow().applied;
            if *stop.borrow() && *committed.borrow() <= applied {
                return;
            }
            let woken = runtime.block_on(async {
                tokio::select! {
                    woken = committed.wait_for(|&c| c > applied) => woken.is_ok(),
                    woken = stop.changed() => woken.is_ok(),
                }
            });
            if !woken {
                // The log or the store is gone (dropped without `close`):
                // apply what is committed and stop.
                let _ = self.catch_up();
                return;
            }
        }
    }

    /// Applies every committed event not yet applied.
    fn catch_up(&self) -> Result<()> {
        loop {
            let applied = self.state.borrow().applied;
            // Read before the events: whatever is committed by now is
            // readable below.
            let committed = *self.log.committed().borrow();
            let events = self.log.read_after(applied, MATERIALISE_CHUNK)?;
            let Some(&(last, _)) = events.last() else {
                // Positions up to that committed one hold no event (a
                // replicated log skips what is not a commentd event): the
                // views are as far as the log.
                if committed > applied {
                    (self.on_commit)(&[], committed);
                    self.state.send_modify(|state| state.applied = committed);
                }
                return Ok(());
            };
            {
                let mut views = self.views.write().unwrap_or_else(PoisonError::into_inner);
                for (position, event) in &events {
                    views.apply(*position, event);
                }
            }
            let changes = events
                .iter()
                .filter_map(|(position, event)| Change::of(*position, event));
            let mut published = Vec::new();
            for change in changes {
                match change {
                    Change::Published {
                        id,
                        source,
                        submitted,
                    } => {
                        // A moderator's approval: the content is the
                        // submission it names.
                        let read;
                        let submitted = match submitted {
                            Some(submitted) => Some(submitted),
                            None => {
                                read = self.log.get(source)?;
                                match &read {
                                    Some(Event::Submitted(submitted)) => Some(submitted),
                                    _ => None,
                                }
                            }
                        };
                        if let Some(submitted) = submitted {
                            published.push(ArticleEvent::Published(
                                submitted.comment_as(id, CommentState::Published),
                            ));
                        }
                    }
                    Change::Removed(event) => published.push(event),
                }
            }
            // Live subscribers first: an acknowledged comment is in the
            // hub's watermark before its writer hears back, so a stream
            // opened after the acknowledgement never receives it as live.
            (self.on_commit)(&published, last);
            self.state.send_modify(|state| {
                state.applied = last;
                state.failed = None;
            });
        }
    }
}
