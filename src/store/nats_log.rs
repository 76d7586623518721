//! The replicated log: NATS JetStream, shared by several commentd replicas.
//!
//! # Shape
//! One stream (default `COMMENTS`, subjects `comments.>`), replicated by
//! JetStream (R3 by default). An event's position is its stream sequence,
//! so comment ids are stream sequences: ordered, with gaps where a message
//! was erased. Each replica mirrors the stream into a sled tree of its own,
//! laid out like the embedded log ([`super::sled_log`]), through one ordered
//! consumer (never one consumer per subscriber); reads answer from the
//! mirror and the views are derived from it as in the embedded mode. An
//! append resolves once JetStream acknowledged it (stored on a quorum) and
//! the local mirror holds it, so the store's "durable and visible" holds.
//!
//! # Conditions, batches, duplicates, erasure
//! - An event about a key is published on the key's subject
//!   (`comments.comment.42`, `comments.client.<id>`), so "the key's last
//!   event is at position p" is JetStream's
//!   `Nats-Expected-Last-Subject-Sequence` (0: no event yet). Submissions
//!   go to `comments.article.<id>`, other events to `comments.admin`.
//! - A batch of several events is an atomic batch (ADR-50, nats-server
//!   2.12+, the stream's `allow_atomic`): all or none, consecutive sequences.
//! - A dedup id is `Nats-Msg-Id` (JetStream's window, at most
//!   [`MAX_SERVER_DUPLICATE_WINDOW`]) and the `Commentd-Dedup` header, which
//!   every mirror indexes, so retries are recognised for the whole
//!   idempotency window. (An atomic batch cannot carry `Nats-Msg-Id`: a
//!   batch's ids are checked against the mirror only.)
//! - An erasure removes the erased message from the stream with
//!   JetStream's secure delete (the bytes are overwritten) once the removal
//!   is in the stream; the removal carries the erased copy
//!   (`Commentd-Erased`), so every mirror keeps the audit entry, even one
//!   that never saw the original.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_nats::{
    HeaderMap, RequestErrorKind,
    jetstream::{
        self,
        consumer::{
            DeliverPolicy,
            pull::{self, OrderedConfig},
        },
        context::PublishErrorKind,
        message::PublishMessage,
        stream::{Config as StreamConfig, StorageType, Stream},
    },
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::{sync::watch, task::JoinHandle};

use crate::metrics::CommitMetrics;

use super::{
    event::{Event, encode, u64_at_end},
    log::{Append, AppendFuture, Appended, CommentLog, LogError, Writability},
    sled_log::{
        decode_event, dedup_keys, dedup_records, find_duplicate, log_key, read_after, read_dedup,
        read_error, read_event, sweep_expired,
    },
};

/// JetStream keeps message ids in memory; retries older than this are
/// recognised by the mirrors' index instead.
pub const MAX_SERVER_DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// Longest pull of the mirror's consumer.
const PULL_EXPIRY: Duration = Duration::from_secs(4);
/// Checks (a second apart) of a mirror behind the stream and not moving
/// before it is asked to follow the stream anew.
const STALL_CHECKS: u32 = 3;
/// Longest wait for the stream to create the mirror's consumer.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(1);
/// An acknowledged append not mirrored after this makes the mirror follow
/// the stream anew (its consumer may have died with a server).
const MIRROR_PATIENCE: Duration = Duration::from_millis(750);
/// Wait before publishing again when JetStream had no responder for the
/// subject (its stream leader being elected): nothing was stored, so the
/// retry is safe; retried within the log's timeout (nats.go does the same,
/// `DefaultPubRetryWait`).
const NO_RESPONDERS_RETRY: Duration = Duration::from_millis(250);
/// How long opening waits for the stream to answer.
const STARTUP_PATIENCE: Duration = Duration::from_secs(30);
/// Messages the mirror writes in one sled batch at most.
const MIRROR_CHUNK: usize = 1024;
/// The mirror's tree, and its record of the last stream sequence mirrored
/// and of which stream it mirrors.
const MIRROR_TREE: &str = "nats-mirror.v1";
const PROGRESS: &[u8] = b"p";
const STREAM_IDENTITY: &[u8] = b"s";
/// Most messages in one atomic batch (nats-server's limit).
const MAX_BATCH: usize = 1000;
/// JetStream's error code for a failed `Nats-Expected-Last-*` check.
const WRONG_LAST_SEQUENCE: u64 = 10071;

const DEDUP_HEADER: &str = "Commentd-Dedup";
const ERASE_HEADER: &str = "Commentd-Erase";
const ERASED_HEADER: &str = "Commentd-Erased";

/// How to reach the stream.
#[derive(Debug, Clone)]
pub struct NatsLogOptions {
    /// Server URLs, comma-separated (`nats://a:4222,nats://b:4222`).
    pub servers: String,
    /// The stream's name; its subjects are the lowercased name, `.>`.
    pub stream: String,
    /// Copies JetStream keeps (1, 3 or 5), when the stream is created.
    pub replicas: usize,
    /// How long duplicate appends are recognised.
    pub duplicate_window: Duration,
    /// Longest wait for an acknowledgement or an API answer.
    pub timeout: Duration,
    /// Where appends are reported (as the embedded log's group commits:
    /// events per publish, time to acknowledged and mirrored, failures).
    pub metrics: CommitMetrics,
}

/// The JetStream log. Cheap to clone.
#[derive(Clone)]
pub struct NatsLog {
    shared: Arc<Shared>,
}

struct Shared {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: Stream,
    prefix: String,
    tree: sled::Tree,
    committed: watch::Receiver<u64>,
    writability: watch::Receiver<Writability>,
    window: Duration,
    timeout: Duration,
    metrics: CommitMetrics,
    closed: AtomicBool,
    /// Asks the mirror to follow the stream anew.
    resync: Arc<tokio::sync::Notify>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl NatsLog {
    /// Connects, creates the stream if it is missing, and starts mirroring
    /// into `db`; returns once the mirror holds everything the stream held
    /// when it was opened. A data dir that mirrored another stream (or a
    /// recreated one) is emptied and mirrored again: it is a cache.
    pub async fn open(db: &sled::Db, options: NatsLogOptions) -> Result<Self, LogError> {
        // Counts connections, so the mirror follows the stream again at
        // once after a reconnect (its consumer lived on the old connection).
        let (connected_tx, connected) = watch::channel(0_u64);
        let connection = Connection::open(&options, move |event| {
            if matches!(event, async_nats::Event::Connected) {
                connected_tx.send_modify(|count| *count += 1);
            }
        })
        .await?;
        let Connection {
            client,
            js,
            prefix,
            stream,
        } = connection;
        let info = stream.cached_info().clone();
        let tree = db.open_tree(MIRROR_TREE).map_err(read_error)?;
        let identity = format!(
            "{} created {}",
            options.stream,
            info.created.unix_timestamp_nanos()
        );
        if tree.get(STREAM_IDENTITY).map_err(read_error)?.as_deref() != Some(identity.as_bytes()) {
            // A crash before the mark leaves an unmarked mirror, which the
            // next open clears again (the views are rebuilt on every open).
            if !tree.is_empty() {
                tracing::warn!(stream = %options.stream, "the data dir mirrored another stream: mirroring again");
            }
            tree.clear().map_err(read_error)?;
            tree.insert(STREAM_IDENTITY, identity.as_bytes())
                .map_err(read_error)?;
            db.flush().map_err(read_error)?;
        }
        let progress = tree
            .get(PROGRESS)
            .map_err(read_error)?
            .map_or(0, |bytes| u64_at_end(&bytes));
        let (committed_tx, committed) = watch::channel(progress);
        let (writability_tx, writability) = watch::channel(Writability::Writable);
        let (stop, stop_rx) = watch::channel(false);
        let (caught_up_tx, mut caught_up) = watch::channel(progress >= info.state.last_sequence);
        let shared = Arc::new(Shared {
            client,
            js,
            stream: stream.clone(),
            prefix,
            tree,
            committed,
            writability,
            window: options.duplicate_window,
            timeout: options.timeout,
            metrics: options.metrics.clone(),
            closed: AtomicBool::new(false),
            resync: Arc::new(tokio::sync::Notify::new()),
            stop,
            tasks: Mutex::new(Vec::new()),
        });
        let mirror = Mirror {
            stream: stream.clone(),
            tree: shared.tree.clone(),
            committed: committed_tx,
            caught_up: caught_up_tx,
            target: info.state.last_sequence,
            window: shared.window,
        };
        let tasks = vec![
            tokio::spawn(mirror.run(progress, connected, shared.resync.clone(), stop_rx.clone())),
            tokio::spawn(watch_reachability(
                shared.client.clone(),
                stream,
                writability_tx,
                shared.committed.clone(),
                shared.resync.clone(),
                stop_rx,
            )),
        ];
        *shared.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        let started = std::time::Instant::now();
        if !*caught_up.borrow() {
            tracing::info!(
                from = progress,
                to = info.state.last_sequence,
                "mirroring the stream before serving"
            );
        }
        let _ = caught_up.wait_for(|done| *done).await;
        tracing::info!(
            position = *shared.committed.borrow(),
            seconds = started.elapsed().as_secs_f64(),
            "the mirror holds the stream"
        );
        Ok(Self { shared })
    }
}

/// A connection to the stream, created if missing.
struct Connection {
    client: async_nats::Client,
    js: jetstream::Context,
    prefix: String,
    stream: Stream,
}

impl Connection {
    async fn open(
        options: &NatsLogOptions,
        on_event: impl Fn(async_nats::Event) + Send + Sync + 'static,
    ) -> Result<Self, LogError> {
        let unreachable = |what: &str, error: &dyn std::fmt::Display| {
            LogError::Unavailable(format!(
                "{what} the NATS log at {}: {error}",
                options.servers
            ))
        };
        let servers = options
            .servers
            .split(',')
            .map(|url| url.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| unreachable("cannot read the address of", &error))?;
        let on_event = Arc::new(on_event);
        let client = async_nats::ConnectOptions::new()
            .name("commentd")
            .event_callback(move |event| {
                on_event(event);
                std::future::ready(())
            })
            .connection_timeout(options.timeout)
            .request_timeout(Some(options.timeout))
            .connect(servers)
            .await
            .map_err(|error| unreachable("cannot connect to", &error))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(options.timeout)
            .build(client.clone());
        let prefix = options.stream.to_lowercase();
        let config = StreamConfig {
            name: options.stream.clone(),
            subjects: vec![format!("{prefix}.>")],
            num_replicas: options.replicas,
            storage: StorageType::File,
            duplicate_window: options.duplicate_window.min(MAX_SERVER_DUPLICATE_WINDOW),
            allow_atomic_publish: true,
            ..Default::default()
        };
        // A cluster starting beside commentd may take a while to elect
        // its leaders.
        let started = std::time::Instant::now();
        let stream = loop {
            match js.get_or_create_stream(config.clone()).await {
                Ok(stream) => break stream,
                Err(error) if started.elapsed() < STARTUP_PATIENCE => {
                    tracing::warn!(%error, "the stream is not ready yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(error) => return Err(unreachable("cannot open the stream of", &error)),
            }
        };
        if !stream.cached_info().config.allow_atomic_publish {
            return Err(LogError::Unavailable(format!(
                "the stream {} does not allow atomic batches (allow_atomic); commentd needs nats-server 2.12 or later and creates its stream with it",
                options.stream
            )));
        }
        Ok(Self {
            client,
            js,
            prefix,
            stream,
        })
    }
}

/// What [`publish_sled_log`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Events published now.
    pub published: u64,
    /// The last position of the sled log (and of the stream after it).
    pub last: u64,
}

/// Events published at once while migrating.
const MIGRATE_WINDOW: usize = 256;

/// Publishes the embedded log in `db` into the stream, each event at the
/// stream sequence equal to its position (`Nats-Expected-Last-Sequence`),
/// so comment ids stay valid and new ids continue above them. The stream
/// must be empty or hold a prefix of the same log (a migration cut short
/// resumes where it stopped); duplicate records within the window go with
/// their events.
pub async fn publish_sled_log(
    db: &sled::Db,
    options: &NatsLogOptions,
) -> Result<Migrated, LogError> {
    let tree = db.open_tree(super::sled_log::TREE).map_err(read_error)?;
    let mut dedups: HashMap<u64, String> = HashMap::new();
    // Every record goes (with its time): readers apply their window.
    for (id, position, _) in dedup_records(&tree)? {
        dedups.insert(position, id);
    }
    let connection = Connection::open(options, |_| {}).await?;
    let state = connection.stream.cached_info().state.clone();
    let mut done = state.last_sequence;
    if done > 0 {
        let ours = read_event(&tree, done)?.map(|event| encode(&event));
        let theirs = connection
            .stream
            .get_raw_message(done)
            .await
            .ok()
            .map(|message| message.payload.to_vec());
        if ours.is_none() || ours != theirs {
            return Err(LogError::Write(format!(
                "the stream already holds {} events that are not this log's; migrate into a new stream (--log-stream)",
                state.messages
            )));
        }
    }
    let mut published = 0;
    let mut pending = std::collections::VecDeque::new();
    loop {
        let events = read_after(&tree, done, u64::MAX, MIGRATE_WINDOW)?;
        if events.is_empty() {
            break;
        }
        for (position, event) in events {
            if position != done + 1 {
                return Err(LogError::Write(format!(
                    "the log has no event at position {}; ids could not be kept",
                    done + 1
                )));
            }
            let key = key_of(&event);
            let subject = subject(&connection.prefix, key.as_deref(), &event);
            let mut publish = PublishMessage::build()
                .payload(Bytes::from(encode(&event)))
                .expected_last_sequence(done);
            if let Some(id) = dedups.get(&position) {
                publish = publish.header(DEDUP_HEADER, URL_SAFE_NO_PAD.encode(id).as_str());
            }
            let ack = connection
                .js
                .send_publish(subject, publish)
                .await
                .map_err(|error| unknown_outcome(&error.to_string()))?;
            pending.push_back(ack);
            if pending.len() >= MIGRATE_WINDOW
                && let Some(ack) = pending.pop_front()
            {
                ack.await
                    .map_err(|error| unknown_outcome(&error.to_string()))?;
            }
            done = position;
            published += 1;
        }
    }
    for ack in pending {
        ack.await
            .map_err(|error| unknown_outcome(&error.to_string()))?;
    }
    Ok(Migrated {
        published,
        last: done,
    })
}

/// The key an event of the embedded log was appended about (what the use
/// cases name: a comment's moderation, a client's ban), so a migrated event
/// lands on the subject later conditions check.
fn key_of(event: &Event) -> Option<String> {
    match event {
        Event::Moderated(moderated) => Some(super::comment_key(moderated.comment_id)),
        Event::ClientBanned { ban } => Some(super::client_key(&ban.client_id)),
        Event::ClientUnbanned { client_id, .. } => Some(super::client_key(client_id)),
        _ => None,
    }
}

/// The subject of an event about `key`.
fn subject(prefix: &str, key: Option<&str>, event: &Event) -> String {
    match (key, event) {
        (Some(key), _) => match key.split_once('/') {
            Some((kind @ ("comment" | "client"), rest)) => {
                format!("{prefix}.{kind}.{}", token(rest))
            }
            _ => format!("{prefix}.key.{}", token(key)),
        },
        (None, Event::Submitted(submitted)) => {
            format!("{prefix}.article.{}", token(submitted.article_id.as_str()))
        }
        (None, _) => format!("{prefix}.admin"),
    }
}

impl CommentLog for NatsLog {
    fn append(&self, batch: Vec<Append>) -> AppendFuture {
        let shared = self.shared.clone();
        Box::pin(async move { shared.append(batch).await })
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Event)>, LogError> {
        read_after(
            &self.shared.tree,
            after,
            *self.shared.committed.borrow(),
            limit,
        )
    }

    fn get(&self, position: u64) -> Result<Option<Event>, LogError> {
        if position > *self.shared.committed.borrow() {
            return Ok(None);
        }
        read_event(&self.shared.tree, position)
    }

    fn find_duplicate(&self, dedup_id: &str) -> Result<Option<u64>, LogError> {
        find_duplicate(
            &self.shared.tree,
            dedup_id,
            *self.shared.committed.borrow(),
            self.shared.window,
        )
    }

    fn committed(&self) -> watch::Receiver<u64> {
        self.shared.committed.clone()
    }

    fn duplicate_window(&self) -> Duration {
        self.shared.window
    }

    fn writability(&self) -> watch::Receiver<Writability> {
        self.shared.writability.clone()
    }

    fn close(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), LogError>> + Send>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            shared.closed.store(true, Ordering::SeqCst);
            shared.stop.send_replace(true);
            let tasks =
                std::mem::take(&mut *shared.tasks.lock().unwrap_or_else(|p| p.into_inner()));
            for task in tasks {
                let _ = task.await;
            }
            let _ = shared.client.flush().await;
            shared.tree.flush_async().await.map_err(read_error)?;
            Ok(())
        })
    }
}

/// One message to publish.
#[derive(Clone)]
struct Outgoing {
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
    /// The key the event is about, named by a conflict.
    key: Option<String>,
}

/// An answer of JetStream to a publish (`PubAck` or an API error).
#[derive(Debug, Deserialize)]
struct PublishReply {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

impl Shared {
    /// [`Shared::publish`], reported to the metrics.
    async fn append(&self, batch: Vec<Append>) -> Result<Vec<Appended>, LogError> {
        let started = std::time::Instant::now();
        let appended = self.publish(batch).await;
        match &appended {
            Ok(appended) => {
                let new = appended
                    .iter()
                    .filter(|a| matches!(a, Appended::New(_)))
                    .count();
                if new > 0 {
                    self.metrics.batch_appends.observe(new as f64);
                    self.metrics
                        .duration
                        .observe(started.elapsed().as_secs_f64());
                }
            }
            Err(LogError::Conflict { .. } | LogError::Closed) => {}
            Err(_) => {
                self.metrics.errors.inc();
            }
        }
        appended
    }

    async fn publish(&self, batch: Vec<Append>) -> Result<Vec<Appended>, LogError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(LogError::Closed);
        }
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(LogError::Unavailable(
                "the NATS log is unreachable; nothing was appended".to_owned(),
            ));
        }
        let committed = *self.committed.borrow();
        let mut answers: Vec<Option<Appended>> = vec![None; batch.len()];
        let mut outgoing = Vec::new();
        for (index, append) in batch.iter().enumerate() {
            if let Some(id) = &append.dedup_id
                && let Some(position) = find_duplicate(&self.tree, id, committed, self.window)?
            {
                answers[index] = Some(Appended::Duplicate(position));
                continue;
            }
            outgoing.push((index, self.message(append)?));
        }
        let published = match outgoing.len() {
            0 => Vec::new(),
            1 => {
                let (index, message) = outgoing.pop().expect("one message");
                vec![(index, self.publish_one(message).await?)]
            }
            _ => {
                let indexes: Vec<usize> = outgoing.iter().map(|(index, _)| *index).collect();
                let messages = outgoing.into_iter().map(|(_, message)| message).collect();
                let positions = self.publish_batch(messages).await?;
                indexes
                    .into_iter()
                    .zip(positions.into_iter().map(Appended::New))
                    .collect()
            }
        };
        for (index, appended) in published {
            answers[index] = Some(appended);
        }
        let answers: Vec<Appended> = answers.into_iter().flatten().collect();
        if let Some(last) = answers.iter().map(|a| a.position()).max() {
            self.wait_mirrored(last).await?;
        }
        // A removal is answered once its text is off the stream too (the
        // other replicas erase again should this one fail or crash first).
        let targets: Vec<u64> = batch
            .iter()
            .zip(&answers)
            .filter(|(_, appended)| matches!(appended, Appended::New(_)))
            .filter_map(|(append, _)| append.erase)
            .collect();
        if !targets.is_empty() {
            erase(&self.stream, &targets, self.timeout).await;
        }
        Ok(answers)
    }

    /// The message of one append: subject, payload and headers.
    fn message(&self, append: &Append) -> Result<Outgoing, LogError> {
        let subject = subject(&self.prefix, append.key.as_deref(), &append.event);
        let mut headers = HeaderMap::new();
        if let Some(id) = &append.dedup_id {
            headers.insert(DEDUP_HEADER, URL_SAFE_NO_PAD.encode(id).as_str());
        }
        if let Some(expected) = append.expect {
            headers.insert(
                "Nats-Expected-Last-Subject-Sequence",
                expected.unwrap_or(0).to_string().as_str(),
            );
        }
        if let Some(target) = append.erase {
            headers.insert(ERASE_HEADER, target.to_string().as_str());
            // The erased copy, for mirrors that never saw the original.
            if let Some(Event::Submitted(mut submitted)) = read_event(&self.tree, target)? {
                submitted.erase();
                let copy = encode(&Event::Submitted(submitted));
                headers.insert(ERASED_HEADER, URL_SAFE_NO_PAD.encode(copy).as_str());
            }
        }
        Ok(Outgoing {
            subject,
            headers,
            payload: Bytes::from(encode(&append.event)),
            key: append.key.clone(),
        })
    }

    /// Publishes one message (with `Nats-Msg-Id` when it has a dedup id).
    async fn publish_one(&self, message: Outgoing) -> Result<Appended, LogError> {
        let Outgoing {
            subject,
            mut headers,
            payload,
            key,
        } = message;
        if let Some(id) = headers.get(DEDUP_HEADER).map(|v| v.as_str().to_owned()) {
            headers.insert("Nats-Msg-Id", id.as_str());
        }
        let key = key.unwrap_or_default();
        self.while_no_leader(|| self.publish_one_once(&subject, &headers, &payload, &key))
            .await
    }

    async fn publish_one_once(
        &self,
        subject: &str,
        headers: &HeaderMap,
        payload: &Bytes,
        key: &str,
    ) -> Result<Appended, Attempt> {
        let publish = PublishMessage::build()
            .payload(payload.clone())
            .headers(headers.clone());
        let ack = async {
            self.js
                .send_publish(subject.to_owned(), publish)
                .await
                .map_err(|error| (error.kind(), error.to_string()))?
                .await
                .map_err(|error| (error.kind(), error.to_string()))
        }
        .await;
        match ack {
            Ok(ack) if ack.duplicate => Ok(Appended::Duplicate(ack.sequence)),
            Ok(ack) => Ok(Appended::New(ack.sequence)),
            Err((PublishErrorKind::WrongLastSequence, _)) => {
                Err(Attempt::Failed(LogError::Conflict {
                    key: key.to_owned(),
                }))
            }
            // async-nats reports NO_RESPONDERS as StreamNotFound.
            Err((PublishErrorKind::StreamNotFound, _)) => Err(Attempt::NoResponders),
            Err((_, error)) => Err(unknown_outcome(&error).into()),
        }
    }

    /// Publishes several messages as one atomic batch; their positions.
    /// Published again as a new batch while there is no leader (the stream
    /// drops a batch that was never committed).
    async fn publish_batch(&self, messages: Vec<Outgoing>) -> Result<Vec<u64>, LogError> {
        self.while_no_leader(|| self.publish_batch_once(messages.clone()))
            .await
    }

    /// Runs `attempt` again every [`NO_RESPONDERS_RETRY`] while it finds no
    /// responder on the subject (no stream leader: nothing was stored, so
    /// the retry is safe), for up to the log's timeout.
    async fn while_no_leader<T, F, Fut>(&self, mut attempt: F) -> Result<T, LogError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match attempt().await {
                Ok(done) => return Ok(done),
                Err(Attempt::Failed(error)) => return Err(error),
                Err(Attempt::NoResponders)
                    if tokio::time::Instant::now() + NO_RESPONDERS_RETRY < deadline =>
                {
                    tokio::time::sleep(NO_RESPONDERS_RETRY).await;
                }
                Err(Attempt::NoResponders) => {
                    return Err(LogError::Unavailable(
                        "the stream had no leader to take the append; nothing was appended"
                            .to_owned(),
                    ));
                }
            }
        }
    }

    async fn publish_batch_once(&self, messages: Vec<Outgoing>) -> Result<Vec<u64>, Attempt> {
        if messages.len() > MAX_BATCH {
            return Err(Attempt::Failed(LogError::Unavailable(format!(
                "{} events at once are more than the stream takes in one atomic batch ({MAX_BATCH}); nothing was appended",
                messages.len()
            ))));
        }
        let inbox = self.client.new_inbox();
        let batch_id = inbox.rsplit('.').next().unwrap_or(&inbox).to_owned();
        let count = messages.len();
        let conflict_key = messages
            .iter()
            .find_map(|message| {
                message
                    .headers
                    .get("Nats-Expected-Last-Subject-Sequence")
                    .and(message.key.clone())
            })
            .unwrap_or_default();
        let mut reply = None;
        for (index, message) in messages.into_iter().enumerate() {
            let mut headers = message.headers;
            headers.insert("Nats-Batch-Id", batch_id.as_str());
            headers.insert("Nats-Batch-Sequence", (index + 1).to_string().as_str());
            if index + 1 < count {
                self.client
                    .publish_with_headers(message.subject, headers, message.payload)
                    .await
                    .map_err(|error| LogError::Unavailable(format!("publishing: {error}")))?;
            } else {
                headers.insert("Nats-Batch-Commit", "1");
                let answer = tokio::time::timeout(
                    self.timeout,
                    self.client
                        .request_with_headers(message.subject, headers, message.payload),
                )
                .await
                .map_err(|_| unknown_outcome("no acknowledgement in time"))?
                .map_err(|error| match error.kind() {
                    RequestErrorKind::NoResponders => Attempt::NoResponders,
                    _ => unknown_outcome(&error.to_string()).into(),
                })?;
                reply = Some(answer);
            }
        }
        let reply = reply.expect("a batch has a last message");
        let reply: PublishReply = serde_json::from_slice(&reply.payload)
            .map_err(|error| unknown_outcome(&format!("unreadable acknowledgement: {error}")))?;
        if let Some(error) = reply.error {
            return Err(Attempt::Failed(if error.err_code == WRONG_LAST_SEQUENCE {
                LogError::Conflict { key: conflict_key }
            } else {
                LogError::Unavailable(format!(
                    "the stream refused the batch, so nothing was appended: {} ({})",
                    error.description, error.err_code
                ))
            }));
        }
        let stored = reply.count.unwrap_or(count as u64);
        if stored != count as u64 || reply.seq < stored {
            return Err(Attempt::Failed(unknown_outcome(&format!(
                "the stream stored {stored} of {count} events"
            ))));
        }
        Ok((reply.seq - (stored - 1)..=reply.seq).collect())
    }

    /// Waits (bounded) until the mirror holds `position`.
    async fn wait_mirrored(&self, position: u64) -> Result<(), LogError> {
        let mut committed = self.committed.clone();
        let mirrored =
            tokio::time::timeout(MIRROR_PATIENCE, committed.wait_for(|c| *c >= position));
        if let Ok(Ok(_)) = mirrored.await {
            return Ok(());
        }
        self.resync.notify_waiters();
        match tokio::time::timeout(self.timeout, committed.wait_for(|c| *c >= position)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(LogError::Closed),
            Err(_) => Err(LogError::Unavailable(format!(
                "position {position} is stored in the stream but this replica has not received it yet; a retry with the same idempotency_key is answered with it"
            ))),
        }
    }
}

/// Why one attempt at publishing failed.
enum Attempt {
    /// Nothing listened on the subject: no stream leader, nothing stored.
    NoResponders,
    Failed(LogError),
}

impl From<LogError> for Attempt {
    fn from(error: LogError) -> Self {
        Self::Failed(error)
    }
}

fn unknown_outcome(cause: &str) -> LogError {
    LogError::Unavailable(format!(
        "the NATS log did not confirm the append ({cause}); it may or may not be stored"
    ))
}

/// A subject token for an id: the id itself when it is made of letters,
/// digits, `-` and `_`, else `~` and its base64url.
fn token(id: &str) -> String {
    if !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        id.to_owned()
    } else {
        format!("~{}", URL_SAFE_NO_PAD.encode(id))
    }
}

/// What [`Mirror::write`] did.
struct Written {
    /// The last sequence written, if any.
    last: Option<u64>,
    /// The mirror could not be written, or the consumer delivered what the
    /// mirror already holds (an ordered consumer that restarted itself
    /// from the stream's start): follow the stream again after `last`.
    follow_again: bool,
}

/// Feeds the local mirror from the stream, in sequence order.
struct Mirror {
    stream: Stream,
    tree: sled::Tree,
    committed: watch::Sender<u64>,
    caught_up: watch::Sender<bool>,
    /// The stream's last sequence when it was opened.
    target: u64,
    window: Duration,
}

impl Mirror {
    async fn run(
        self,
        mut progress: u64,
        mut connected: watch::Receiver<u64>,
        resync: Arc<tokio::sync::Notify>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut last_sweep = std::time::Instant::now();
        loop {
            if *stop.borrow() {
                return;
            }
            connected.borrow_and_update();
            let mut chunks = match self.follow(progress).await {
                Ok(messages) => messages.ready_chunks(MIRROR_CHUNK),
                Err(error) => {
                    tracing::warn!(%error, "cannot follow the stream; retrying");
                    if pause(&mut stop).await {
                        return;
                    }
                    continue;
                }
            };
            loop {
                let chunk = tokio::select! {
                    chunk = chunks.next() => chunk,
                    _ = stop.wait_for(|stop| *stop) => return,
                    // Reconnected, or an append waits for an event the
                    // consumer has not delivered: follow from where the
                    // mirror is.
                    _ = connected.changed() => break,
                    () = resync.notified() => {
                        tracing::debug!(progress, "following the stream anew");
                        break;
                    }
                };
                let Some(chunk) = chunk else { break };
                let mut failed = false;
                let mut received = Vec::with_capacity(chunk.len());
                for item in chunk {
                    match item {
                        Ok(message) => received.push(message),
                        Err(error) => {
                            tracing::warn!(%error, "following the stream failed; resuming");
                            failed = true;
                            break;
                        }
                    }
                }
                let written = self.write(&received, progress).await;
                if let Some(last) = written.last {
                    progress = last;
                    if last >= self.target {
                        self.caught_up.send_replace(true);
                    }
                }
                // Follow again from what the mirror holds.
                failed |= written.follow_again;
                if last_sweep.elapsed() >= Duration::from_secs(1) {
                    let tree = self.tree.clone();
                    let window = self.window;
                    let _ = tokio::task::spawn_blocking(move || sweep_expired(&tree, window)).await;
                    last_sweep = std::time::Instant::now();
                }
                if failed {
                    break;
                }
            }
            if pause(&mut stop).await {
                return;
            }
        }
    }

    /// An ordered consumer of the stream after `progress`, and its messages.
    /// Asked again soon when it fails: during a leader election the request
    /// waits for no answer.
    async fn follow(&self, progress: u64) -> Result<pull::Ordered, String> {
        let consumer = tokio::time::timeout(
            FOLLOW_TIMEOUT,
            self.stream.create_consumer(OrderedConfig {
                deliver_policy: if progress == 0 {
                    DeliverPolicy::All
                } else {
                    DeliverPolicy::ByStartSequence {
                        start_sequence: progress + 1,
                    }
                },
                // Short pulls, so a consumer lost with its server is noticed
                // (two missed heartbeats) within seconds.
                max_expires: PULL_EXPIRY,
                ..Default::default()
            }),
        )
        .await
        .map_err(|_| "creating the consumer timed out".to_owned())?
        .map_err(|error| error.to_string())?;
        // Nothing left to deliver (the tail may be deleted messages, which
        // no consumer delivers): caught up.
        if consumer.cached_info().num_pending == 0 {
            self.caught_up.send_replace(true);
        }
        consumer.messages().await.map_err(|error| error.to_string())
    }

    /// Writes received messages after `progress` to the mirror and
    /// advances the committed position (never backwards).
    async fn write(&self, messages: &[jetstream::Message], progress: u64) -> Written {
        let mut batch = sled::Batch::default();
        let mut last = None;
        let mut erasures = Vec::new();
        let mut dedups = HashSet::new();
        let mut at_end = false;
        let mut replayed = false;
        for message in messages {
            let Ok(info) = message.info() else { continue };
            let position = info.stream_sequence;
            if position <= progress.max(last.unwrap_or(0)) {
                replayed = true;
                continue;
            }
            last = Some(position);
            at_end = info.pending == 0;
            if let Err(error) = decode_event(position, &message.payload) {
                tracing::error!(%error, position, subject = %message.subject, "not a commentd event: skipped");
                continue;
            }
            batch.insert(&log_key(position)[..], message.payload.to_vec());
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(name))
                    .map(|value| value.as_str().to_owned())
            };
            if let Some(id) = header(DEDUP_HEADER)
                .and_then(|id| URL_SAFE_NO_PAD.decode(id).ok())
                .and_then(|id| String::from_utf8(id).ok())
                // The first append of an id keeps its record.
                && !dedups.contains(&id)
                && matches!(read_dedup(&self.tree, &id), Ok(None))
            {
                let at = u64::try_from(info.published.unix_timestamp()).unwrap_or(0);
                let (record, by_time) = dedup_keys(&id, at);
                batch.insert(record, encode(&(position, at)));
                batch.insert(by_time, &[]);
                dedups.insert(id);
            }
            if let Some(target) = header(ERASE_HEADER).and_then(|t| t.parse::<u64>().ok())
                && let Some(copy) = self.erased_copy(target, position, header(ERASED_HEADER))
            {
                batch.insert(&log_key(target)[..], copy);
                erasures.push(target);
            }
        }
        let Some(last) = last else {
            return Written {
                last: None,
                follow_again: replayed,
            };
        };
        batch.insert(PROGRESS, &last.to_be_bytes());
        let tree = self.tree.clone();
        let written = tokio::task::spawn_blocking(move || tree.apply_batch(batch)).await;
        let failed = match written {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(error) => Some(error.to_string()),
        };
        if let Some(error) = failed {
            tracing::error!(%error, "writing the mirror failed");
            return Written {
                last: None,
                follow_again: true,
            };
        }
        self.committed.send_replace(last);
        if at_end {
            self.caught_up.send_replace(true);
        }
        // The replica that appended a removal erased its text; others
        // erase again in the background as removals arrive live (not
        // while catching up on history), in case it crashed first.
        if *self.caught_up.borrow() && !erasures.is_empty() {
            let stream = self.stream.clone();
            tokio::spawn(async move { erase(&stream, &erasures, Duration::ZERO).await });
        }
        Written {
            last: Some(last),
            follow_again: replayed,
        }
    }

    /// The erased copy of the submission at `target` that the removal at
    /// `position` takes down: the copy it carries when that is an erased
    /// submission, else the mirror's own, erased. `None` when the target
    /// is not an earlier submission (nothing to erase).
    fn erased_copy(&self, target: u64, position: u64, carried: Option<String>) -> Option<Vec<u8>> {
        if target >= position {
            return None;
        }
        let erased = |event: Event| match event {
            Event::Submitted(mut submitted) => {
                submitted.erase();
                Some(encode(&Event::Submitted(submitted)))
            }
            _ => None,
        };
        match read_event(&self.tree, target) {
            Ok(Some(event)) => erased(event),
            // Never seen here (erased before this replica mirrored it).
            Ok(None) => carried
                .and_then(|copy| URL_SAFE_NO_PAD.decode(copy).ok())
                .and_then(|copy| decode_event(target, &copy).ok())
                .filter(|event| matches!(event, Event::Submitted(s) if s.text.is_none()))
                .and_then(erased),
            Err(_) => None,
        }
    }
}

/// Takes the messages at `targets` off the stream (JetStream overwrites
/// them on disk), retrying each until `patience` has passed; a message
/// already gone is fine. One that cannot be erased is logged and left to
/// the other replicas, which erase again.
async fn erase(stream: &Stream, targets: &[u64], patience: Duration) {
    let deadline = tokio::time::Instant::now() + patience;
    for &target in targets {
        loop {
            match stream.delete_message(target).await {
                Ok(_) => break,
                // Already gone (another replica erased it first).
                Err(error) if already_gone(&error) => break,
                Err(error) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%error, target, "erasing a removed text: retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => {
                    tracing::warn!(%error, target, "a removed text could not be erased from the stream yet");
                    break;
                }
            }
        }
    }
}

/// Whether a delete failed because the message is not there (JetStream
/// answers 10037, or 10057 "no message found" for one deleted already).
fn already_gone(error: &async_nats::jetstream::stream::DeleteMessageError) -> bool {
    match error.kind() {
        async_nats::jetstream::stream::DeleteMessageErrorKind::JetStream(error) => {
            error.error_code() == async_nats::jetstream::ErrorCode::NO_MESSAGE_FOUND
                || error.to_string().contains("no message found")
        }
        _ => false,
    }
}

/// Waits a moment before retrying; true when stopping.
async fn pause(stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(500)) => false,
        _ = stop.wait_for(|stop| *stop) => true,
    }
}

/// Reports whether the stream takes appends: connected, and its leader
/// answers (a stream without a quorum has none).
///
/// Also watches the mirror: when the stream holds more than the mirror and
/// the mirror has not moved for [`STALL_CHECKS`] checks (its consumer died
/// with a server and nothing noticed yet), it asks the mirror to follow the
/// stream anew, once for each such state.
async fn watch_reachability(
    client: async_nats::Client,
    mut stream: Stream,
    writability: watch::Sender<Writability>,
    committed: watch::Receiver<u64>,
    resync: Arc<tokio::sync::Notify>,
    mut stop: watch::Receiver<bool>,
) {
    // The stream's last sequence, the mirror's, and how many checks saw them.
    let mut behind = (0, 0, 0);
    loop {
        let state = if client.connection_state() != async_nats::connection::State::Connected {
            Writability::Unreachable("not connected to NATS".to_owned())
        } else {
            match tokio::time::timeout(Duration::from_secs(2), stream.info()).await {
                Ok(Ok(info)) => {
                    let seen = (info.state.last_sequence, *committed.borrow());
                    if seen.0 > seen.1 && (seen.0, seen.1) == (behind.0, behind.1) {
                        behind.2 += 1;
                        if behind.2 == STALL_CHECKS {
                            tracing::debug!(stream = seen.0, mirror = seen.1, "the mirror stalled");
                            resync.notify_waiters();
                        }
                    } else {
                        behind = (seen.0, seen.1, 0);
                    }
                    Writability::Writable
                }
                Ok(Err(error)) => Writability::Unreachable(format!("the stream: {error}")),
                Err(_) => Writability::Unreachable("the stream does not answer".to_owned()),
            }
        };
        writability.send_if_modified(|current| {
            if *current == state {
                return false;
            }
            match &state {
                Writability::Writable => tracing::info!("the NATS log is reachable"),
                other => tracing::warn!(?other, "the NATS log is unreachable"),
            }
            *current = state;
            true
        });
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::testing::open_nats;

    crate::conformance_suite!(open_nats);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_erased_text_leaves_the_stream_and_new_mirrors_keep_the_audit() {
        use crate::store::{Append, CommentLog, Event, comment_key, conformance};
        let (first, second) = (
            tempfile::TempDir::new().unwrap(),
            tempfile::TempDir::new().unwrap(),
        );
        let stream = "ERASURE";
        let log = super::testing::open_nats_stream(first.path(), stream);
        let written = log
            .append(vec![Append::new(conformance::submission(
                "Text to take down.",
            ))])
            .await
            .unwrap()[0]
            .position();
        log.append(vec![
            Append::new(conformance::event(1))
                .expecting(comment_key(crate::domain::CommentId::new(written)), None)
                .erasing(written),
        ])
        .await
        .unwrap();
        let client = async_nats::connect(super::testing::server_urls())
            .await
            .unwrap();
        let stream_handle = async_nats::jetstream::new(client)
            .get_stream(stream)
            .await
            .unwrap();
        let held = stream_handle.get_raw_message(written).await;
        assert!(held.is_err(), "the stream still holds the text: {held:?}");
        assert!(
            stream_handle.get_raw_message(written + 1).await.is_ok(),
            "the removal itself stays"
        );
        // A replica that never saw the original keeps the audit entry.
        let late = super::testing::open_nats_stream(second.path(), stream);
        let Some(Event::Submitted(erased)) = late.get(written).unwrap() else {
            panic!("no audit entry at {written}")
        };
        assert_eq!(erased.text, None);
        assert_eq!(erased.verdict.decision, crate::domain::Decision::Approved);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_that_is_not_an_event_is_skipped_and_the_views_keep_up() {
        use std::sync::Arc;

        use crate::store::{Append, CommentLog, Store, conformance};
        let dir = tempfile::TempDir::new().unwrap();
        let (db, log) = super::testing::open_nats_db(dir.path(), "JUNK");
        let log = Arc::new(log);
        let store = Store::with_log(db, log.clone(), Box::new(|_, _| {})).unwrap();
        let client = async_nats::connect(super::testing::server_urls())
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        let junk = js.publish("junk.x", "not an event".into()).await.unwrap();
        let junk = junk.await.unwrap().sequence;
        let appended = store
            .append_one(Append::new(conformance::event(1)))
            .await
            .unwrap()
            .position();
        assert!(appended > junk);
        let read: Vec<u64> = log
            .read_after(0, 10)
            .unwrap()
            .iter()
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(
            read,
            vec![appended],
            "the junk took a position but holds no event"
        );
        // A trailing gap: the views still count as caught up.
        let trailing = js.publish("junk.y", "not an event".into()).await.unwrap();
        let trailing = trailing.await.unwrap().sequence;
        let mut committed = log.committed();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            committed.wait_for(|c| *c >= trailing),
        )
        .await
        .unwrap()
        .unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), store.caught_up())
            .await
            .expect("the views reach the committed position")
            .unwrap();
        assert_eq!(store.last_position(), trailing);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_replica_opens_when_the_stream_ends_with_deleted_messages() {
        use crate::store::{Append, CommentLog, conformance};
        let (first, second) = (
            tempfile::TempDir::new().unwrap(),
            tempfile::TempDir::new().unwrap(),
        );
        let log = super::testing::open_nats_stream(first.path(), "TAIL");
        let written = log
            .append((0..3).map(|n| Append::new(conformance::event(n))).collect())
            .await
            .unwrap();
        let client = async_nats::connect(super::testing::server_urls())
            .await
            .unwrap();
        let stream = async_nats::jetstream::new(client)
            .get_stream("TAIL")
            .await
            .unwrap();
        // Every message gone: the consumer delivers nothing at all.
        for appended in &written {
            stream.delete_message(appended.position()).await.unwrap();
        }
        let late = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio::task::spawn_blocking({
                let dir = second.path().to_owned();
                move || {
                    tokio::runtime::Handle::current()
                        .block_on(async { super::testing::open_nats_stream(&dir, "TAIL") })
                }
            }),
        )
        .await
        .expect("opening does not wait for deleted messages")
        .unwrap();
        assert_eq!(late.read_after(0, 10).unwrap(), vec![]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forged_erasure_headers_neither_corrupt_the_mirror_nor_erase_other_events() {
        use crate::store::{Append, CommentLog, conformance, event::encode};
        let dir = tempfile::TempDir::new().unwrap();
        let log = super::testing::open_nats_stream(dir.path(), "FORGE");
        let ban_like = log
            .append(vec![Append::new(conformance::event(1))])
            .await
            .unwrap()[0]
            .position();
        let client = async_nats::connect(super::testing::server_urls())
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(super::ERASE_HEADER, ban_like.to_string().as_str());
        headers.insert(super::ERASED_HEADER, "bm90IGFuIGV2ZW50");
        let forged = js
            .publish_with_headers(
                "forge.admin",
                headers,
                encode(&conformance::event(2)).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap()
            .sequence;
        let mut committed = log.committed();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            committed.wait_for(|c| *c >= forged),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(log.get(ban_like).unwrap(), Some(conformance::event(1)));
        assert_eq!(log.read_after(0, 10).unwrap().len(), 2, "every event reads");
        let stream = js.get_stream("FORGE").await.unwrap();
        assert!(stream.get_raw_message(ban_like).await.is_ok(), "not erased");
    }

    #[test]
    fn tokens_are_subject_safe() {
        assert_eq!(super::token("article-1_x"), "article-1_x");
        assert_eq!(super::token("a.b"), format!("~{}", "YS5i"));
        assert!(super::token("news/2026 >*").starts_with('~'));
    }
}
