//! The embedded log: sled on local disk, one writer thread, group commit.
//!
//! # Group commit
//! Appends queue to one writer thread (never a tokio worker). It takes
//! everything queued, checks conditions and duplicates, gives the events
//! consecutive positions, applies them as one sled batch, flushes sled, then
//! `fdatasync`s sled's data file, and only then answers every append of the
//! group and advances the committed position. Under load a group holds as
//! many appends as arrived during the previous flush, so the disk's cost is
//! shared.
//!
//! # Durability
//! sled's `flush()` ends in `sync_file_range`, which reaches neither the
//! drive's cache nor file metadata; an acknowledged write would survive a
//! process crash but not a power cut. The writer keeps its own descriptor of
//! sled's data file and calls `fdatasync` on it after each flush (fsync acts
//! on the file, whichever descriptor asks), so an acknowledgement follows an
//! `fdatasync` of the data written for it.
//!
//! # Layout (tree `log.v2`)
//! | key                           | value                                  |
//! |-------------------------------|----------------------------------------|
//! | `l` position (u64 BE)         | the event ([`super::event`] encoding)  |
//! | `k` key                       | position of the key's last event       |
//! | `d` dedup id                  | position of its first append, and when |
//! | `t` time (u64 BE) dedup id    | (empty) sweep index of `d`             |

use std::{
    cell::Cell,
    collections::{HashMap, HashSet},
    ffi::OsString,
    fs::File,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::sync::{oneshot, watch};

use crate::metrics::CommitMetrics;

use super::{
    event::{Event, decode, encode, u64_at_end},
    log::{Append, AppendFuture, Appended, CommentLog, LogError, Writability},
};

/// The tree of the log.
pub(super) const TREE: &str = "log.v2";
const LOG: u8 = b'l';
const KEY: u8 = b'k';
const DEDUP: u8 = b'd';
const DEDUP_BY_TIME: u8 = b't';

/// Most appends in one group (the rest wait for the next).
const MAX_GROUP: usize = 4096;
/// Expired duplicate records removed per sweep, so a sweep's cost is bounded.
const SWEEP_LIMIT: usize = 1024;
/// How often an idle writer sweeps.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

enum Request {
    Append(
        Vec<Append>,
        oneshot::Sender<Result<Vec<Appended>, LogError>>,
    ),
    Close(oneshot::Sender<Result<(), LogError>>),
}

/// Counters of the writer, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Groups made durable.
    pub groups: AtomicU64,
    /// `fdatasync` calls that succeeded.
    pub syncs: AtomicU64,
    /// Appends answered.
    pub appends: AtomicU64,
    /// sled's blob files synced (large pages, in `blobs/`).
    pub blob_syncs: AtomicU64,
}

/// Free space the log keeps on the data disk by default: appends are
/// refused (and the server reports NOT_SERVING) below it, so that sled
/// never meets a full disk, which it cannot recover from without a restart.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;

/// How to open the sled log.
#[derive(Debug, Clone)]
pub struct SledLogOptions {
    /// How long duplicate appends are recognised.
    pub duplicate_window: Duration,
    /// Appends are refused while the disk has less than this free (or a
    /// quarter of its size, if that is less).
    pub min_free_bytes: u64,
    /// Where group commits are reported.
    pub metrics: CommitMetrics,
}

/// The sled log. Cheap to clone.
#[derive(Clone)]
pub struct SledLog {
    tree: sled::Tree,
    requests: Arc<Mutex<Option<mpsc::Sender<Request>>>>,
    committed: watch::Receiver<u64>,
    writability: watch::Receiver<Writability>,
    window: Duration,
    stats: Arc<WriterStats>,
}

impl SledLog {
    /// Opens the log in `db` (in the folder `dir`) and starts its writer
    /// thread, keeping [`DEFAULT_MIN_FREE_BYTES`] free.
    pub fn open(db: &sled::Db, dir: &Path, duplicate_window: Duration) -> Result<Self, LogError> {
        Self::open_with(
            db,
            dir,
            SledLogOptions {
                duplicate_window,
                min_free_bytes: DEFAULT_MIN_FREE_BYTES,
                metrics: CommitMetrics::default(),
            },
        )
    }

    /// Opens the log with `options`.
    pub fn open_with(db: &sled::Db, dir: &Path, options: SledLogOptions) -> Result<Self, LogError> {
        let SledLogOptions {
            duplicate_window,
            min_free_bytes,
            metrics,
        } = options;
        let tree = db.open_tree(TREE).map_err(read_error)?;
        let data_file = File::open(dir.join("db")).map_err(|error| {
            LogError::Read(format!("opening sled's data file for fdatasync: {error}"))
        })?;
        // The data file's directory entry, once (a new data dir).
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|error| LogError::Write(format!("syncing the data dir: {error}")))?;
        let last = match tree.scan_prefix([LOG]).next_back() {
            Some(entry) => u64_at_end(&entry.map_err(read_error)?.0),
            None => 0,
        };
        let (committed_tx, committed) = watch::channel(last);
        let (writability_tx, writability) = watch::channel(Writability::Writable);
        let (sender, receiver) = mpsc::channel();
        let stats = Arc::new(WriterStats::default());
        let writer = Writer {
            db: db.clone(),
            tree: tree.clone(),
            data_file,
            dir: dir.to_owned(),
            synced_blobs: HashSet::new(),
            broken: None,
            min_free_bytes,
            writability: writability_tx,
            metrics,
            staged_bytes: Cell::new(0),
            last,
            committed: committed_tx,
            window: duplicate_window,
            stats: stats.clone(),
        };
        thread::Builder::new()
            .name("commentd-log".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(|error| LogError::Write(format!("starting the log writer: {error}")))?;
        Ok(Self {
            tree,
            requests: Arc::new(Mutex::new(Some(sender))),
            committed,
            writability,
            window: duplicate_window,
            stats,
        })
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    fn send(&self, request: Request) -> Result<(), LogError> {
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        match requests.as_ref() {
            Some(sender) => sender.send(request).map_err(|_| LogError::Closed),
            None => Err(LogError::Closed),
        }
    }
}

impl CommentLog for SledLog {
    fn append(&self, batch: Vec<Append>) -> AppendFuture {
        let (reply, answer) = oneshot::channel();
        let sent = self.send(Request::Append(batch, reply));
        Box::pin(async move {
            sent?;
            answer.await.map_err(|_| LogError::Closed)?
        })
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Event)>, LogError> {
        read_after(&self.tree, after, *self.committed.borrow(), limit)
    }

    fn get(&self, position: u64) -> Result<Option<Event>, LogError> {
        if position > *self.committed.borrow() {
            return Ok(None);
        }
        read_event(&self.tree, position)
    }

    fn find_duplicate(&self, dedup_id: &str) -> Result<Option<u64>, LogError> {
        find_duplicate(&self.tree, dedup_id, *self.committed.borrow(), self.window)
    }

    fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    fn writability(&self) -> watch::Receiver<Writability> {
        self.writability.clone()
    }

    fn duplicate_window(&self) -> Duration {
        self.window
    }

    fn close(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), LogError>> + Send>> {
        let (reply, answer) = oneshot::channel();
        let sent = self.send(Request::Close(reply));
        // No further appends: they would be refused as closed.
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        Box::pin(async move {
            match sent {
                Ok(()) => answer.await.unwrap_or(Ok(())),
                Err(_) => Ok(()),
            }
        })
    }
}

/// The writer thread's state.
struct Writer {
    db: sled::Db,
    tree: sled::Tree,
    data_file: File,
    /// sled's folder: large pages go to files of their own in `blobs/`.
    dir: PathBuf,
    /// Blob files already synced.
    synced_blobs: HashSet<OsString>,
    /// Why writing failed: after a failed flush or sync nothing more is
    /// written (pages of the failed group may be lost while later ones are
    /// not); every append is refused until a restart recovers the log.
    broken: Option<String>,
    /// Free space kept on the disk (see [`DEFAULT_MIN_FREE_BYTES`]).
    min_free_bytes: u64,
    writability: watch::Sender<Writability>,
    metrics: CommitMetrics,
    /// Bytes of events staged for the group being committed.
    staged_bytes: Cell<u64>,
    /// The highest position handed out.
    last: u64,
    committed: watch::Sender<u64>,
    window: Duration,
    stats: Arc<WriterStats>,
}

type Reply = oneshot::Sender<Result<Vec<Appended>, LogError>>;

impl Writer {
    fn run(mut self, requests: mpsc::Receiver<Request>) {
        let mut last_sweep = Instant::now();
        loop {
            let first = match requests.recv_timeout(SWEEP_EVERY) {
                Ok(request) => request,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if matches!(*self.writability.borrow(), Writability::NoSpace(_)) {
                        // Report recovery without waiting for a write.
                        let _ = self.check_space(0);
                    }
                    sweep_expired(&self.tree, self.window);
                    last_sweep = Instant::now();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match requests.try_recv() {
                    Ok(request) => group.push(request),
                    Err(_) => break,
                }
            }
            let mut closing = Vec::new();
            let appends: Vec<(Vec<Append>, Reply)> = group
                .into_iter()
                .filter_map(|request| match request {
                    Request::Append(batch, reply) => Some((batch, reply)),
                    Request::Close(reply) => {
                        closing.push(reply);
                        None
                    }
                })
                .collect();
            self.commit_group(appends);
            if !closing.is_empty() {
                // Appends queued behind the close request are refused.
                while let Ok(request) = requests.try_recv() {
                    if let Request::Append(_, reply) = request {
                        let _ = reply.send(Err(LogError::Closed));
                    }
                }
                let flushed = self.make_durable();
                for reply in closing {
                    let _ = reply.send(flushed.clone().map_err(LogError::Write));
                }
                return;
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                sweep_expired(&self.tree, self.window);
                last_sweep = Instant::now();
            }
        }
    }

    /// Applies one group as one batch, makes it durable, answers it.
    fn commit_group(&mut self, group: Vec<(Vec<Append>, Reply)>) {
        if let Some(cause) = &self.broken {
            for (_, reply) in group {
                let _ = reply.send(Err(LogError::Write(format!(
                    "the log stopped writing after an earlier failure ({cause}); restart commentd"
                ))));
            }
            return;
        }
        let mut batch = sled::Batch::default();
        // This group's writes, which the tree does not show yet.
        let mut keys: HashMap<String, u64> = HashMap::new();
        let mut dedups: HashMap<String, u64> = HashMap::new();
        let mut erased: HashMap<u64, Event> = HashMap::new();
        let mut answers: Vec<(Reply, Result<Vec<Appended>, LogError>)> = Vec::new();
        let mut next = self.last + 1;
        let now = unix_seconds(SystemTime::now());
        for (appends, reply) in group {
            let answer = self.stage(
                &appends,
                &mut batch,
                &mut keys,
                &mut dedups,
                &mut erased,
                &mut next,
                now,
            );
            answers.push((reply, answer));
        }
        if next == self.last + 1 && erased.is_empty() {
            // Nothing to write (conflicts and duplicates only), but a
            // duplicate is answered once its first append is durable: it was
            // committed before this group, or it is in this group.
            self.answer(answers);
            return;
        }
        let started = Instant::now();
        let staged = self.staged_bytes.replace(0);
        if let Err(full) = self.check_space(staged) {
            self.metrics.errors.inc();
            // Nothing was written: the callers may retry.
            for (reply, _) in answers {
                let _ = reply.send(Err(LogError::NoSpace(full.clone())));
            }
            return;
        }
        let written = self
            .tree
            .apply_batch(batch)
            .map_err(|error| error.to_string())
            .and_then(|()| self.make_durable());
        match written {
            Ok(()) => {
                self.metrics
                    .batch_appends
                    .observe((next - 1 - self.last) as f64);
                self.metrics
                    .duration
                    .observe(started.elapsed().as_secs_f64());
                self.last = next - 1;
                self.committed.send_replace(self.last);
                self.stats.groups.fetch_add(1, Ordering::Relaxed);
                self.answer(answers);
            }
            Err(error) => {
                // The outcome of these appends is unknown to their callers;
                // nothing more is written (see `broken`).
                self.metrics.errors.inc();
                self.last = next - 1;
                self.broken = Some(error.clone());
                self.writability
                    .send_replace(Writability::Failed(error.clone()));
                tracing::error!(%error, "writing the log failed; refusing appends until a restart");
                for (reply, answer) in answers {
                    let _ = reply.send(answer.and(Err(LogError::Write(error.clone()))));
                }
            }
        }
    }

    /// Checks one batch's conditions and stages its events.
    #[allow(clippy::too_many_arguments)]
    fn stage(
        &self,
        appends: &[Append],
        batch: &mut sled::Batch,
        keys: &mut HashMap<String, u64>,
        dedups: &mut HashMap<String, u64>,
        erased: &mut HashMap<u64, Event>,
        next: &mut u64,
        now: u64,
    ) -> Result<Vec<Appended>, LogError> {
        for append in appends {
            if let (Some(key), Some(expected)) = (&append.key, append.expect) {
                let last = match keys.get(key) {
                    Some(&position) => Some(position),
                    None => self.last_of_key(key)?,
                };
                if last != expected {
                    return Err(LogError::Conflict { key: key.clone() });
                }
            }
        }
        // Every read first, so that an error stages nothing of this batch.
        let mut earlier_appends = Vec::with_capacity(appends.len());
        let mut erase_targets = Vec::with_capacity(appends.len());
        for append in appends {
            earlier_appends.push(match &append.dedup_id {
                Some(id) => read_dedup(&self.tree, id)?
                    .filter(|&(_, at)| !expired(at, self.window))
                    .map(|(position, _)| position),
                None => None,
            });
            erase_targets.push(match append.erase {
                Some(target) if !erased.contains_key(&target) => read_event(&self.tree, target)?,
                _ => None,
            });
        }
        let mut out = Vec::with_capacity(appends.len());
        for ((append, earlier), stored) in appends.iter().zip(earlier_appends).zip(erase_targets) {
            if let Some(id) = &append.dedup_id
                && let Some(position) = dedups.get(id).copied().or(earlier)
            {
                out.push(Appended::Duplicate(position));
                continue;
            }
            let position = *next;
            *next += 1;
            let encoded = encode(&append.event);
            self.staged_bytes
                .set(self.staged_bytes.get() + encoded.len() as u64);
            batch.insert(&log_key(position)[..], encoded);
            if let Some(key) = &append.key {
                batch.insert(key_key(key), &position.to_be_bytes());
                keys.insert(key.clone(), position);
            }
            if let Some(id) = &append.dedup_id {
                let (record, by_time) = dedup_keys(id, now);
                batch.insert(record, encode(&(position, now)));
                batch.insert(by_time, &[]);
                dedups.insert(id.clone(), position);
            }
            if let Some(target) = append.erase {
                let event = erased.remove(&target).or(stored);
                if let Some(Event::Submitted(mut submitted)) = event {
                    submitted.erase();
                    let event = Event::Submitted(submitted);
                    batch.insert(&log_key(target)[..], encode(&event));
                    erased.insert(target, event);
                }
            }
            out.push(Appended::New(position));
        }
        Ok(out)
    }

    fn answer(&self, answers: Vec<(Reply, Result<Vec<Appended>, LogError>)>) {
        self.stats
            .appends
            .fetch_add(answers.len() as u64, Ordering::Relaxed);
        for (reply, answer) in answers {
            let _ = reply.send(answer);
        }
    }

    /// Refuses to write while the disk's free space is under the reserve
    /// (`min_free_bytes`, at most a quarter of the disk) plus what this
    /// group will take, so that sled, which cannot recover from a full disk
    /// without a restart, never meets one ([`has_room`]); reports the
    /// change to watchers.
    fn check_space(&mut self, staged: u64) -> Result<(), String> {
        let state = match (fs2::available_space(&self.dir), fs2::total_space(&self.dir)) {
            (Ok(available), Ok(total)) => {
                let reserve = self.min_free_bytes.min(total / 4);
                let stopped = matches!(*self.writability.borrow(), Writability::NoSpace(_));
                if has_room(available, reserve, staged, stopped) {
                    Writability::Writable
                } else {
                    Writability::NoSpace(format!(
                        "the data disk is full ({} KiB free, {} KiB kept free); writes resume once {} KiB are free, reads still work",
                        available / 1024,
                        reserve / 1024,
                        resume_at(reserve) / 1024
                    ))
                }
            }
            // Cannot tell: let the write itself find out.
            _ => Writability::Writable,
        };
        let result = match &state {
            Writability::NoSpace(message) => Err(message.clone()),
            _ => Ok(()),
        };
        self.writability.send_if_modified(|current| {
            if *current == state {
                return false;
            }
            match &state {
                Writability::NoSpace(message) => tracing::warn!(%message, "refusing writes"),
                _ => tracing::info!("free space is back; writes resume"),
            }
            *current = state;
            true
        });
        result
    }

    /// sled's flush, then `fdatasync` of its data file and of any new
    /// blob file (sled writes a page over a quarter of a segment, such as
    /// many long non-Latin comments, to a file of its own and syncs neither
    /// it nor its folder).
    fn make_durable(&mut self) -> Result<(), String> {
        self.db.flush().map_err(|error| error.to_string())?;
        self.data_file
            .sync_data()
            .map_err(|error| format!("fdatasync: {error}"))?;
        self.sync_new_blobs()
            .map_err(|error| format!("syncing sled's blob files: {error}"))?;
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn sync_new_blobs(&mut self) -> std::io::Result<()> {
        let folder = self.dir.join("blobs");
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let mut present = HashSet::new();
        let mut synced_any = false;
        for entry in entries {
            let name = entry?.file_name();
            if !self.synced_blobs.contains(&name) {
                match File::open(folder.join(&name)) {
                    Ok(file) => {
                        file.sync_data()?;
                        self.stats.blob_syncs.fetch_add(1, Ordering::Relaxed);
                    }
                    // sled removed it meanwhile.
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(error),
                }
                synced_any = true;
            }
            present.insert(name);
        }
        if synced_any {
            File::open(&folder)?.sync_all()?;
        }
        self.synced_blobs = present;
        Ok(())
    }

    fn last_of_key(&self, key: &str) -> Result<Option<u64>, LogError> {
        Ok(self
            .tree
            .get(key_key(key))
            .map_err(read_error)?
            .map(|bytes| u64_at_end(&bytes)))
    }
}

/// Whether a group staging `staged` bytes of events may be written with
/// `available` bytes free and `reserve` kept free. Events count four times
/// (sled writes pages whole, and the views follow). Once writes have
/// `stopped`, they resume only at [`resume_at`], a little above the
/// reserve: free space that hovers around the reserve (sled's own
/// background writes, other files) does not flip the log, and health with
/// it, between full and writable.
fn has_room(available: u64, reserve: u64, staged: u64, stopped: bool) -> bool {
    let floor = if stopped { resume_at(reserve) } else { reserve };
    available >= floor.saturating_add(staged.saturating_mul(4))
}

/// Free space at which stopped writes resume: the reserve and an eighth.
fn resume_at(reserve: u64) -> u64 {
    reserve.saturating_add(reserve / 8)
}

/// Removes up to [`SWEEP_LIMIT`] expired duplicate records of `tree` (the
/// `d` and `t` records of the layout above). Not synced: a sweep lost in a
/// crash is redone.
pub(super) fn sweep_expired(tree: &sled::Tree, window: Duration) {
    let cutoff = unix_seconds(SystemTime::now()).saturating_sub(window.as_secs());
    let end = [&[DEDUP_BY_TIME][..], &cutoff.to_be_bytes()].concat();
    let mut batch = sled::Batch::default();
    let mut swept = 0;
    for entry in tree.range(vec![DEDUP_BY_TIME]..end).take(SWEEP_LIMIT) {
        let Ok((key, _)) = entry else { break };
        let id = String::from_utf8_lossy(key.get(9..).unwrap_or_default()).into_owned();
        // A record for the same id written later is kept.
        if let Ok(Some((_, at))) = read_dedup(tree, &id)
            && at < cutoff
        {
            batch.remove(dedup_key(&id));
        }
        batch.remove(key);
        swept += 1;
    }
    if swept > 0 {
        if let Err(error) = tree.apply_batch(batch) {
            tracing::warn!(%error, "sweeping expired duplicate records failed");
        } else {
            tracing::debug!(swept, "expired duplicate records swept");
        }
    }
}

/// Committed events of `tree` after `after` (up to `committed`), in
/// position order, at most `limit`; positions may have gaps.
pub(super) fn read_after(
    tree: &sled::Tree,
    after: u64,
    committed: u64,
    limit: usize,
) -> Result<Vec<(u64, Event)>, LogError> {
    let mut events = Vec::new();
    if after >= committed {
        return Ok(events);
    }
    let range = log_key(after.saturating_add(1))..=log_key(committed);
    for entry in tree.range(range).take(limit) {
        let (key, bytes) = entry.map_err(read_error)?;
        let position = u64_at_end(&key);
        events.push((position, decode_event(position, &bytes)?));
    }
    Ok(events)
}

/// The committed first append of `dedup_id` in `tree`, if within `window`.
pub(super) fn find_duplicate(
    tree: &sled::Tree,
    dedup_id: &str,
    committed: u64,
    window: Duration,
) -> Result<Option<u64>, LogError> {
    Ok(read_dedup(tree, dedup_id)?
        .filter(|&(position, at)| position <= committed && !expired(at, window))
        .map(|(position, _)| position))
}

/// Every duplicate record of `tree`: the id, its first position, and when.
#[cfg(feature = "nats")]
pub(super) fn dedup_records(tree: &sled::Tree) -> Result<Vec<(String, u64, u64)>, LogError> {
    let mut records = Vec::new();
    for entry in tree.scan_prefix([DEDUP]) {
        let (key, value) = entry.map_err(read_error)?;
        let id = String::from_utf8_lossy(&key[1..]).into_owned();
        let (position, at): (u64, u64) = decode(&value).map_err(|source| LogError::Corrupt {
            position: 0,
            source,
        })?;
        records.push((id, position, at));
    }
    Ok(records)
}

/// The event at `position`, committed or not.
pub(super) fn read_event(tree: &sled::Tree, position: u64) -> Result<Option<Event>, LogError> {
    match tree.get(log_key(position)).map_err(read_error)? {
        Some(bytes) => decode_event(position, &bytes).map(Some),
        None => Ok(None),
    }
}

pub(super) fn decode_event(position: u64, bytes: &[u8]) -> Result<Event, LogError> {
    decode(bytes).map_err(|source| LogError::Corrupt { position, source })
}

pub(super) fn read_dedup(tree: &sled::Tree, id: &str) -> Result<Option<(u64, u64)>, LogError> {
    match tree.get(dedup_key(id)).map_err(read_error)? {
        Some(bytes) => decode(&bytes)
            .map(Some)
            .map_err(|source| LogError::Corrupt {
                position: 0,
                source,
            }),
        None => Ok(None),
    }
}

pub(super) fn expired(at: u64, window: Duration) -> bool {
    unix_seconds(SystemTime::now()).saturating_sub(at) > window.as_secs()
}

pub(super) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(super) fn log_key(position: u64) -> [u8; 9] {
    let mut key = [LOG; 9];
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

fn dedup_key(id: &str) -> Vec<u8> {
    [&[DEDUP][..], id.as_bytes()].concat()
}

/// The key of a duplicate record and of its sweep index entry.
pub(super) fn dedup_keys(id: &str, at: u64) -> (Vec<u8>, Vec<u8>) {
    (
        dedup_key(id),
        [&[DEDUP_BY_TIME][..], &at.to_be_bytes(), id.as_bytes()].concat(),
    )
}

/// The key remembering a condition key's last position.
pub(super) fn key_key(key: &str) -> Vec<u8> {
    [&[KEY][..], key.as_bytes()].concat()
}

pub(super) fn read_error(error: sled::Error) -> LogError {
    LogError::Read(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_stop_at_the_reserve_and_resume_only_above_it() {
        const MIB: u64 = 1024 * 1024;
        let reserve = 64 * MIB;
        // Writable: a group fits while the reserve stays free after it.
        assert!(has_room(65 * MIB, reserve, MIB / 8, false));
        assert!(!has_room(65 * MIB, reserve, MIB, false));
        assert!(!has_room(63 * MIB, reserve, 0, false));
        // Stopped: space back just over the reserve is not enough...
        assert!(!has_room(66 * MIB, reserve, 0, true));
        assert!(!has_room(resume_at(reserve) - 1, reserve, 0, true));
        // ...an eighth more is.
        assert_eq!(resume_at(reserve), 72 * MIB);
        assert!(has_room(72 * MIB, reserve, 0, true));
        assert!(!has_room(72 * MIB, reserve, MIB, true));
        // No overflow at the extremes.
        assert!(!has_room(u64::MAX - 1, u64::MAX / 2, u64::MAX, false));
        assert!(!has_room(0, u64::MAX, 0, true));
    }
}
