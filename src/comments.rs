//! The comment use cases: submit, check, get, list, subscribe.
//!
//! This is where the parts meet: validated [`Submission`]s go through the
//! idempotency check, the rate limit, the parent check and the screening
//! pipeline into the [`Store`]; streams are stitched together from the store
//! (replay) and the [`Hub`] (live). Nothing here knows about gRPC.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::{
    domain::{
        ArticleEvent, ArticleId, ArticleSettings, AuthorName, ClientId, Comment, CommentId,
        CommentText, Decision, Filter, ModerationMode, Reason, ReservedNames, Submission, Verdict,
    },
    error::Error,
    hub::{Hub, Lagged, Subscription},
    metrics::{DecisionLabels, Metrics, ReasonLabels},
    paging,
    screening::{
        duplicate::DuplicateTracker,
        pool::ScreeningPool,
        rate_limit::{RateLimiter, RatePolicy},
    },
    store::{Append, Appended, Event, Lookup, Store, StoreError, Submitted, idempotency_id},
};

/// Events buffered between a subscription task and its gRPC stream.
const STREAM_BUFFER: usize = 64;
/// Comments read from the store per step of a replay.
const REPLAY_CHUNK: usize = 256;

/// The outcome of `submit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitOutcome {
    pub verdict: Verdict,
    pub comment: Option<Comment>,
    /// Answered from the idempotency record of an earlier call.
    pub replayed: bool,
}

/// One page of `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentPage {
    pub comments: Vec<Comment>,
    pub next_page_token: Option<String>,
}

/// What limits submissions and checks.
#[derive(Debug, Clone)]
pub struct SubmitLimits {
    /// Submissions per `client_id`.
    pub client_rate: RatePolicy,
    /// Submissions per caller address, whatever the `client_id`s.
    pub peer_rate: RatePolicy,
    /// `CheckComment` calls per caller address.
    pub check_rate: RatePolicy,
    /// How long the same text from the same client is a duplicate.
    pub duplicate_window: Duration,
    /// Longest text, in characters.
    pub max_text_chars: usize,
}

pub struct Comments {
    store: Store,
    hub: Arc<Hub>,
    screening: ScreeningPool,
    client_rate: RateLimiter<ClientId>,
    peer_rate: RateLimiter<IpAddr>,
    check_rate: RateLimiter<IpAddr>,
    duplicates: DuplicateTracker,
    reserved_names: ReservedNames,
    max_text_chars: usize,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
}

impl Comments {
    pub fn new(
        store: Store,
        hub: Arc<Hub>,
        screening: ScreeningPool,
        limits: &SubmitLimits,
        reserved_names: ReservedNames,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            hub,
            screening,
            client_rate: RateLimiter::new(limits.client_rate),
            peer_rate: RateLimiter::new(limits.peer_rate),
            check_rate: RateLimiter::new(limits.check_rate),
            duplicates: DuplicateTracker::new(limits.duplicate_window),
            reserved_names,
            max_text_chars: limits.max_text_chars,
            metrics,
            shutdown,
        }
    }

    /// The configured text limit, for parsing requests.
    pub fn max_text_chars(&self) -> usize {
        self.max_text_chars
    }

    /// Screens and records a submission from `caller` (the address the
    /// per-peer limit counts; none for in-process calls).
    pub async fn submit(
        &self,
        submission: Submission,
        caller: Option<IpAddr>,
    ) -> Result<SubmitOutcome, Error> {
        let dedup_id = submission
            .idempotency_key
            .as_ref()
            .map(|key| idempotency_id(submission.client_id.as_str(), key.as_str()));
        if let Some(id) = &dedup_id
            && let Some(position) = self.store.find_duplicate(id)?
        {
            return self.replay(position, &submission).await;
        }
        self.reserved_names.check(&submission.author_name)?;
        if let Some(caller) = caller {
            self.peer_rate.try_acquire(&caller).map_err(|retry_after| {
                self.metrics.rate_limited("address");
                Error::RateLimited {
                    what: "too many submissions from this address",
                    retry_after,
                }
            })?;
        }
        self.client_rate
            .try_acquire(&submission.client_id)
            .map_err(|retry_after| {
                self.metrics.rate_limited("client_id");
                Error::RateLimited {
                    what: "too many submissions from this client_id",
                    retry_after,
                }
            })?;
        if let Some(parent) = submission.parent_id {
            self.check_parent(parent, &submission.article_id)?;
        }
        let now = SystemTime::now();
        let settings = self.store.article(&submission.article_id)?;
        if !settings.is_open_at(now) {
            return Err(Error::FailedPrecondition(format!(
                "comments on article {} are closed",
                submission.article_id
            )));
        }

        let mut verdict = self
            .screening
            .screen(
                Some(submission.author_name.clone()),
                submission.text.clone(),
            )
            .await?;
        if let Some(reason) = self
            .duplicates
            .check(&submission.client_id, &submission.text)
        {
            self.metrics.duplicates.inc();
            verdict.push(reason);
        }
        self.apply_policy(&submission, &settings, now, &mut verdict)?;

        let mut submitted = Submitted {
            article_id: submission.article_id.clone(),
            author_name: Some(submission.author_name.clone()),
            text: Some(submission.text.clone()),
            parent_id: submission.parent_id,
            client_id: submission.client_id.clone(),
            time: now,
            verdict: verdict.clone(),
            fingerprint: submission.fingerprint(),
        };
        if verdict.decision == Decision::Rejected {
            // The audit keeps the verdict (and the censored text, which a
            // retry is answered with); the rejected text itself is not kept.
            submitted.author_name = None;
            submitted.text = None;
        }
        let mut append = Append::new(Event::Submitted(submitted.clone()));
        if let Some(id) = dedup_id {
            append = append.dedup(id);
        }
        let appended = self
            .store
            .append_one(append)
            .instrument(tracing::info_span!("store.append"))
            .await?;
        match appended {
            Appended::New(position) => {
                self.count(&verdict);
                let comment = submitted.comment(position);
                if comment.is_some() {
                    self.duplicates
                        .record(&submission.client_id, &submission.text);
                }
                Ok(SubmitOutcome {
                    verdict,
                    comment,
                    replayed: false,
                })
            }
            Appended::Duplicate(position) => self.replay(position, &submission).await,
        }
    }

    fn count(&self, verdict: &Verdict) {
        let decision = match verdict.decision {
            Decision::Approved => "approved",
            Decision::Held => "held",
            Decision::Rejected => "rejected",
        };
        self.metrics
            .submissions
            .get_or_create(&DecisionLabels { decision })
            .inc();
        for reason in &verdict.reasons {
            self.metrics
                .reasons
                .get_or_create(&ReasonLabels {
                    filter: reason.filter.as_str(),
                    code: reason.code.clone(),
                })
                .inc();
        }
    }

    /// The first response to an idempotency key, from its durable submission.
    async fn replay(&self, position: u64, submission: &Submission) -> Result<SubmitOutcome, Error> {
        // Durable already; answered once the views show it too, like the
        // first answer.
        self.store.wait_applied(position).await?;
        let submitted = self.store.submission(position)?.ok_or_else(|| {
            StoreError::NotFound(format!("the submission at {position} is missing"))
        })?;
        if submitted.fingerprint != submission.fingerprint() {
            return Err(Error::FailedPrecondition(
                "idempotency_key was already used for a different comment".to_owned(),
            ));
        }
        let mut comment = submitted.comment(position);
        if let Some(comment) = &mut comment {
            // As first answered (an erased text would read as empty).
            comment.author_name = submission.author_name.clone();
            comment.text = submission.text.clone();
        }
        Ok(SubmitOutcome {
            verdict: submitted.verdict,
            comment,
            replayed: true,
        })
    }

    /// Bans, pre-moderation and trust for newcomers.
    fn apply_policy(
        &self,
        submission: &Submission,
        settings: &ArticleSettings,
        now: SystemTime,
        verdict: &mut Verdict,
    ) -> Result<(), Error> {
        if let Some(record) = self.store.ban_of(&submission.client_id)?
            && record.ban.is_active_at(now)
        {
            verdict.push(policy_reason(
                Filter::Ban,
                "ban.client",
                "This client is banned from commenting.",
                Decision::Rejected,
            ));
        }
        if settings.moderation_mode == ModerationMode::Pre {
            verdict.push(policy_reason(
                Filter::Policy,
                "policy.pre_moderation",
                "Comments on this article are published after review.",
                Decision::Held,
            ));
        }
        let required = u64::from(settings.newcomer_approvals_required);
        if required > 0
            && self
                .store
                .approved_by_moderators(&submission.client_id, required)?
                < required
        {
            verdict.push(policy_reason(
                Filter::Policy,
                "policy.newcomer",
                "Comments from new commenters are published after review.",
                Decision::Held,
            ));
        }
        Ok(())
    }

    fn check_parent(&self, parent: CommentId, article: &ArticleId) -> Result<(), Error> {
        match self.store.lookup(parent)? {
            Lookup::Published(comment) if &comment.article_id == article => Ok(()),
            Lookup::Published(_) => Err(Error::FailedPrecondition(format!(
                "parent comment {parent} belongs to another article"
            ))),
            Lookup::Held(_) => Err(Error::FailedPrecondition(format!(
                "parent comment {parent} is not approved"
            ))),
            Lookup::Gone => Err(Error::FailedPrecondition(format!(
                "parent comment {parent} was rejected or removed"
            ))),
            Lookup::Missing => Err(Error::NotFound(format!(
                "parent comment {parent} not found"
            ))),
        }
    }

    /// Screens content without storing anything or touching per-client
    /// state; limited per `caller` address.
    pub async fn check(
        &self,
        author_name: Option<AuthorName>,
        text: CommentText,
        caller: Option<IpAddr>,
    ) -> Result<Verdict, Error> {
        if let Some(caller) = caller {
            self.check_rate
                .try_acquire(&caller)
                .map_err(|retry_after| {
                    self.metrics.rate_limited("check");
                    Error::RateLimited {
                        what: "too many CheckComment calls from this address",
                        retry_after,
                    }
                })?;
        }
        Ok(self.screening.screen(author_name, text).await?)
    }

    /// One approved comment.
    pub fn get(&self, id: CommentId) -> Result<Comment, Error> {
        match self.store.lookup(id)? {
            Lookup::Published(comment) => Ok(comment),
            Lookup::Held(_) | Lookup::Gone | Lookup::Missing => {
                Err(Error::NotFound(format!("comment {id} not found")))
            }
        }
    }

    /// One page of an article's approved comments, oldest first.
    pub fn list(
        &self,
        article: &ArticleId,
        page_size: usize,
        page_token: &str,
    ) -> Result<CommentPage, Error> {
        let scope = format!("comments:{article}");
        let after =
            paging::decode(page_token, &scope, self.store.last_position())?.map(CommentId::new);
        let page = self
            .store
            .published_after(article, after, paging::page_size(page_size))?;
        let next_page_token = match page.items.last() {
            Some(last) if page.more => Some(paging::encode(&scope, last.id.position())),
            _ => None,
        };
        Ok(CommentPage {
            comments: page.items,
            next_page_token,
        })
    }

    /// Opens a stream of an article's events: first the approved comments
    /// after `after` (if given), then live ones, without gap or duplicate.
    pub fn subscribe(
        self: &Arc<Self>,
        article: ArticleId,
        after: Option<CommentId>,
    ) -> Result<mpsc::Receiver<Result<Arc<ArticleEvent>, Error>>, Error> {
        if *self.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        if let Some(after) = after
            && after.position() > self.store.last_position()
        {
            return Err(Error::OutOfRange(format!(
                "after_comment_id {after} was never issued by this server"
            )));
        }
        let subscription = self.hub.subscribe(&article);
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(
            self.clone()
                .run_subscription(article, after, subscription, sender),
        );
        Ok(receiver)
    }

    async fn run_subscription(
        self: Arc<Self>,
        article: ArticleId,
        after: Option<CommentId>,
        mut subscription: Subscription,
        sender: mpsc::Sender<Result<Arc<ArticleEvent>, Error>>,
    ) {
        let watermark = subscription.watermark;
        let mut stream = StreamSender {
            sender,
            shutdown: self.shutdown.clone(),
            last_sent: after.map_or(watermark, CommentId::position),
        };
        tracing::debug!(%article, cursor = stream.last_sent, "subscription started");
        self.metrics.subscribers.inc();

        let ended: Result<(), StreamEnd> = async {
            if after.is_some() {
                self.catch_up(&article, watermark, &mut stream).await?;
            }
            loop {
                match subscription.events_after(stream.last_sent) {
                    Ok(events) => {
                        for event in events {
                            stream.send(event).await?;
                        }
                    }
                    Err(Lagged) => {
                        tracing::debug!(%article, "subscriber lagged; catching up from the store");
                        self.metrics.subscriber_lags.inc();
                        let watermark = self.hub.watermark();
                        self.catch_up(&article, watermark, &mut stream).await?;
                        self.metrics.subscriber_catch_ups.inc();
                        continue;
                    }
                }
                tokio::select! {
                    biased;
                    _ = stream.shutdown.wait_for(|stopping| *stopping) => {
                        return Err(StreamEnd::ShuttingDown);
                    }
                    _ = stream.sender.closed() => return Err(StreamEnd::ClientGone),
                    () = subscription.published() => {}
                }
            }
        }
        .await;

        match ended {
            Ok(()) | Err(StreamEnd::ClientGone) => {}
            Err(StreamEnd::ShuttingDown) => {
                let _ = stream.sender.try_send(Err(Error::ShuttingDown));
            }
            Err(StreamEnd::Store(error)) => {
                let _ = stream.sender.try_send(Err(error.into()));
            }
        }
        drop(subscription);
        self.hub.release(&article);
        self.metrics.subscribers.dec();
        tracing::debug!(%article, "subscription ended");
    }

    /// Sends the article's events in `(last_sent, through]` from the store.
    async fn catch_up(
        &self,
        article: &ArticleId,
        through: u64,
        stream: &mut StreamSender,
    ) -> Result<(), StreamEnd> {
        while stream.last_sent < through {
            let (events, last_read) =
                self.store
                    .events_after(article, stream.last_sent, through, REPLAY_CHUNK)?;
            for event in events {
                stream.send(Arc::new(event)).await?;
            }
            match last_read {
                // Skip redacted entries too, so the next chunk starts after them.
                Some(position) => stream.last_sent = stream.last_sent.max(position),
                // Everything of this article up to `through` is sent.
                None => stream.last_sent = through,
            }
        }
        Ok(())
    }
}

fn policy_reason(filter: Filter, code: &str, message: &str, decision: Decision) -> Reason {
    Reason {
        filter,
        code: code.to_owned(),
        message: message.to_owned(),
        category: None,
        severity: None,
        decision,
    }
}

/// Why a subscription task stopped early.
enum StreamEnd {
    ClientGone,
    ShuttingDown,
    Store(StoreError),
}

impl From<StoreError> for StreamEnd {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// The sending half of one subscription, remembering the last position sent.
struct StreamSender {
    sender: mpsc::Sender<Result<Arc<ArticleEvent>, Error>>,
    shutdown: watch::Receiver<bool>,
    last_sent: u64,
}

impl StreamSender {
    /// Sends one event; waits while the client is slow, but not past shutdown.
    async fn send(&mut self, event: Arc<ArticleEvent>) -> Result<(), StreamEnd> {
        let position = event.position();
        tokio::select! {
            biased;
            _ = self.shutdown.wait_for(|stopping| *stopping) => Err(StreamEnd::ShuttingDown),
            sent = self.sender.send(Ok(event)) => {
                sent.map_err(|_| StreamEnd::ClientGone)?;
                self.last_sent = position;
                Ok(())
            }
        }
    }
}
