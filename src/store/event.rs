//! The log's records: one event per thing that happened, in a compact
//! binary encoding.
//!
//! Events are self-contained: each carries what the views need (article,
//! client, the position of the submission it acts on), so materialising one
//! never reads another. An event's position is assigned by the log; a
//! submission's position is its comment id, and an approval's position is
//! the id of the comment it publishes.
//!
//! # Encoding
//! One format byte ([`FORMAT`]) and the event in postcard (serde, varints, no
//! field names): an approved comment of 260 characters takes about 330
//! bytes. postcard has no field tags, so a change to these types is a new
//! format with a migration (see `store::migrate`); new enum variants at the
//! end are readable by the format as it is.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::domain::{
    ArticleId, ArticleSettings, AuditAction, AuditEvent, AuthorName, Ban, ClientId, Comment,
    CommentId, CommentState, CommentText, Decision, FILTER_ACTOR, ModerationAction, Term, Verdict,
};

/// The encoding of every stored event and view value.
pub const FORMAT: u8 = 2;

/// One thing that happened, at one position of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A screened submission: approved (published at this position), held
    /// (queued under this position) or rejected (recorded for the audit).
    Submitted(Submitted),
    /// A moderator's action on a comment.
    Moderated(Moderated),
    ArticleUpdated {
        article_id: ArticleId,
        settings: ArticleSettings,
        actor: String,
        note: String,
        time: SystemTime,
    },
    TermsAdded {
        terms: Vec<Term>,
        actor: String,
        note: String,
        time: SystemTime,
    },
    TermsRemoved {
        texts: Vec<String>,
        actor: String,
        note: String,
        time: SystemTime,
    },
    ClientBanned {
        ban: Ban,
    },
    ClientUnbanned {
        client_id: ClientId,
        actor: String,
        time: SystemTime,
    },
}

/// A screened submission. The author name and text are `None` once erased
/// (a removed comment's text does not stay on disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub article_id: ArticleId,
    pub author_name: Option<AuthorName>,
    pub text: Option<CommentText>,
    pub parent_id: Option<CommentId>,
    pub client_id: ClientId,
    pub time: SystemTime,
    pub verdict: Verdict,
    /// Fingerprint of the submission (see `Submission::fingerprint`), so a
    /// reused idempotency key is told apart from a retry.
    pub fingerprint: u64,
}

/// A moderator's action on the comment `comment_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moderated {
    pub action: ModerationAction,
    pub comment_id: CommentId,
    /// The position of the submission holding the comment's content.
    pub source: u64,
    pub article_id: ArticleId,
    pub client_id: ClientId,
    pub actor: String,
    pub note: String,
    pub time: SystemTime,
}

impl Submitted {
    /// The comment this submission stored, as it was when submitted, under
    /// id `position` (`None` when it was rejected).
    pub fn comment(&self, position: u64) -> Option<Comment> {
        let state = match self.verdict.decision {
            Decision::Approved => CommentState::Published,
            Decision::Held => CommentState::Held,
            Decision::Rejected => return None,
        };
        Some(self.comment_as(CommentId::new(position), state))
    }

    /// The comment's content under `id` in `state`; an erased author or text
    /// reads as empty.
    pub fn comment_as(&self, id: CommentId, state: CommentState) -> Comment {
        Comment {
            id,
            article_id: self.article_id.clone(),
            author_name: self.author_name.clone().unwrap_or_else(AuthorName::erased),
            text: self.text.clone().unwrap_or_else(CommentText::erased),
            parent_id: self.parent_id,
            client_id: self.client_id.clone(),
            created_at: self.time,
            state,
        }
    }

    /// Drops the author's name and text.
    pub fn erase(&mut self) {
        self.author_name = None;
        self.text = None;
        self.verdict.censored_text = None;
    }
}

impl Event {
    /// The audit entry this event is, with `position` as its id.
    pub fn audit(&self, position: u64) -> AuditEvent {
        let entry = |actor: &str, action, time| AuditEvent {
            id: position,
            time,
            actor: actor.to_owned(),
            action,
            article_id: None,
            comment_id: None,
            client_id: None,
            decision: None,
            reasons: Vec::new(),
            note: String::new(),
        };
        match self {
            Event::Submitted(submitted) => AuditEvent {
                article_id: Some(submitted.article_id.clone()),
                comment_id: (submitted.verdict.decision != Decision::Rejected)
                    .then(|| CommentId::new(position)),
                client_id: Some(submitted.client_id.clone()),
                decision: Some(submitted.verdict.decision),
                reasons: submitted.verdict.reasons.clone(),
                ..entry(FILTER_ACTOR, AuditAction::Screened, submitted.time)
            },
            Event::Moderated(moderated) => AuditEvent {
                article_id: Some(moderated.article_id.clone()),
                comment_id: Some(moderated.comment_id),
                client_id: Some(moderated.client_id.clone()),
                note: moderated.note.clone(),
                ..entry(
                    &moderated.actor,
                    match moderated.action {
                        ModerationAction::Approve => AuditAction::Approved,
                        ModerationAction::Reject => AuditAction::Rejected,
                        ModerationAction::Remove => AuditAction::Removed,
                    },
                    moderated.time,
                )
            },
            Event::ArticleUpdated {
                article_id,
                actor,
                note,
                time,
                ..
            } => AuditEvent {
                article_id: Some(article_id.clone()),
                note: note.clone(),
                ..entry(actor, AuditAction::ArticleUpdated, *time)
            },
            Event::TermsAdded {
                actor, note, time, ..
            } => AuditEvent {
                note: note.clone(),
                ..entry(actor, AuditAction::TermsAdded, *time)
            },
            Event::TermsRemoved {
                actor, note, time, ..
            } => AuditEvent {
                note: note.clone(),
                ..entry(actor, AuditAction::TermsRemoved, *time)
            },
            Event::ClientBanned { ban } => AuditEvent {
                client_id: Some(ban.client_id.clone()),
                note: ban.reason.clone(),
                ..entry(&ban.created_by, AuditAction::ClientBanned, ban.created_at)
            },
            Event::ClientUnbanned {
                client_id,
                actor,
                time,
            } => AuditEvent {
                client_id: Some(client_id.clone()),
                ..entry(actor, AuditAction::ClientUnbanned, *time)
            },
        }
    }
}

/// An encoded value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("stored format {found} is newer than this commentd reads ({FORMAT}): upgrade commentd")]
    NewerFormat { found: u8 },
    #[error("stored format {found} is not {FORMAT}: the data dir was not migrated")]
    OlderFormat { found: u8 },
    #[error("empty value")]
    Empty,
    #[error("{0}")]
    Postcard(#[from] postcard::Error),
}

/// The big-endian u64 that ends a key (a position or id), or that is a
/// value; shorter input reads as its low bytes.
pub fn u64_at_end(bytes: &[u8]) -> u64 {
    let mut be = [0; 8];
    let tail = &bytes[bytes.len().saturating_sub(8)..];
    be[8 - tail.len()..].copy_from_slice(tail);
    u64::from_be_bytes(be)
}

/// The format byte and the value in postcard.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![FORMAT];
    // Serialising plain data into a Vec cannot fail.
    bytes.extend(postcard::to_stdvec(value).unwrap_or_default());
    bytes
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&FORMAT, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((&found, _)) if found > FORMAT => Err(DecodeError::NewerFormat { found }),
        Some((&found, _)) => Err(DecodeError::OlderFormat { found }),
    }
}
