//! Views: what the queries read, derived from the log's events by one
//! materialiser, and rebuilt from the log whenever they are deleted.
//!
//! Values are small (positions and states); a comment's content stays in its
//! log event and is read from there. Applying an event only writes (it never
//! reads another view entry), so a group of events is one batch.
//!
//! # Layout (tree `views.v2`)
//! | key                                 | value                              |
//! |-------------------------------------|------------------------------------|
//! | `@`                                 | position of the last event applied |
//! | `A` article `\0` position           | listing entry: published (its submission's position) or a removal |
//! | `L` id                              | where a comment stands ([`Status`]), once it changed (before, the event at the id says) |
//! | `H` id, `G` article `\0` id         | the held queue, all and by article |
//! | `C` client `\0` id                  | a client's published comments (for bans) |
//! | `T` client `\0` id                  | a client's comments moderators approved (trust) |
//! | `S` article                         | article settings                   |
//! | `W` term                            | blocked or allowed term            |
//! | `B` client                          | ban, and the position of its event |
//! | `Va` article `\0` position, `Vc` id position | audit indexes (the log is the audit; a comment's own submission is not indexed) |
//!
//! Article and client ids cannot contain `\0` (validation), so every prefix
//! scan is exact.

use serde::{Deserialize, Serialize};

use super::event::{DecodeError, Event, Moderated, Submitted, decode, encode, u64_at_end};
use crate::domain::{
    ArticleEvent, ArticleId, ArticleSettings, Ban, ClientId, CommentId, Decision, ModerationAction,
    Term,
};

/// The tree of the views (derivable from the log: dropped to rebuild).
pub(super) const TREE: &str = "views.v2";
pub(super) const APPLIED: &[u8] = b"@";
pub(super) const LISTING: u8 = b'A';
pub(super) const STATUS: u8 = b'L';
pub(super) const HELD: u8 = b'H';
pub(super) const HELD_BY_ARTICLE: u8 = b'G';
pub(super) const BY_CLIENT: u8 = b'C';
pub(super) const TRUST: u8 = b'T';
pub(super) const SETTINGS: u8 = b'S';
pub(super) const TERM: u8 = b'W';
pub(super) const BAN: u8 = b'B';
pub(super) const AUDIT_BY_ARTICLE: &[u8] = b"Va";
pub(super) const AUDIT_BY_COMMENT: &[u8] = b"Vc";

/// One entry of an article's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListingEntry {
    /// A published comment; its content is the submission at `source`.
    Published { source: u64 },
    /// The removal of a published comment.
    Removed { comment_id: CommentId },
}

/// Where a comment id stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Published {
        article_id: ArticleId,
        source: u64,
    },
    Held {
        article_id: ArticleId,
    },
    /// A held comment a moderator approved: published under this id.
    ApprovedAs(CommentId),
    Rejected,
    Removed {
        article_id: ArticleId,
    },
}

/// A ban and the position of the event that set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    pub ban: Ban,
    pub position: u64,
}

/// Writes of one group of events, and what they tell live subscribers.
pub(super) struct Materialised {
    pub batch: sled::Batch,
    /// Publications (whose comment content is read from the log by the
    /// caller) and removals, in position order.
    pub changes: Vec<Change>,
}

/// A change to an article's public comments.
pub(super) enum Change {
    Published {
        id: CommentId,
        source: u64,
        /// The content, when the event that published it carries it.
        submitted: Option<Box<Submitted>>,
    },
    Removed(ArticleEvent),
}

impl Materialised {
    pub fn new() -> Self {
        Self {
            batch: sled::Batch::default(),
            changes: Vec::new(),
        }
    }

    /// Adds the writes of the event at `position`.
    pub fn apply(&mut self, position: u64, event: &Event) {
        match event {
            Event::Submitted(submitted) => self.submitted(position, submitted),
            Event::Moderated(moderated) => self.moderated(position, moderated),
            Event::ArticleUpdated {
                article_id,
                settings,
                ..
            } => {
                self.put(settings_key(article_id), encode(settings));
                self.index(audit_by_article_key(article_id, position));
            }
            Event::TermsAdded { terms, .. } => {
                for term in terms {
                    self.put(term_key(&term.text), encode(term));
                }
            }
            Event::TermsRemoved { texts, .. } => {
                for text in texts {
                    self.batch.remove(term_key(text));
                }
            }
            Event::ClientBanned { ban } => {
                let record = BanRecord {
                    ban: ban.clone(),
                    position,
                };
                self.put(ban_key(&ban.client_id), encode(&record));
            }
            Event::ClientUnbanned { client_id, .. } => self.batch.remove(ban_key(client_id)),
        }
        self.batch.insert(APPLIED, &position.to_be_bytes());
    }

    fn submitted(&mut self, position: u64, submitted: &Submitted) {
        let id = CommentId::new(position);
        let article = &submitted.article_id;
        self.index(audit_by_article_key(article, position));
        match submitted.verdict.decision {
            Decision::Approved => {
                self.publish(id, position, article, &submitted.client_id);
                self.changes.push(Change::Published {
                    id,
                    source: position,
                    submitted: Some(Box::new(submitted.clone())),
                });
            }
            Decision::Held => {
                self.index(prefixed_id(HELD, id).to_vec());
                self.index(held_by_article_key(article, id));
            }
            // A submission's own audit entry is found by its id, without
            // an index entry (see `Store::audit_after`).
            Decision::Rejected => {}
        }
    }

    fn moderated(&mut self, position: u64, moderated: &Moderated) {
        let target = moderated.comment_id;
        let article = &moderated.article_id;
        self.index(audit_by_article_key(article, position));
        self.index(audit_by_comment_key(target, position));
        match moderated.action {
            ModerationAction::Approve | ModerationAction::Reject => {
                self.batch.remove(&prefixed_id(HELD, target)[..]);
                self.batch.remove(held_by_article_key(article, target));
                if moderated.action == ModerationAction::Reject {
                    self.put(status_key(target), encode(&Status::Rejected));
                    return;
                }
                let id = CommentId::new(position);
                self.put(status_key(target), encode(&Status::ApprovedAs(id)));
                self.publish(id, moderated.source, article, &moderated.client_id);
                self.index(by_client_key(TRUST, &moderated.client_id, id));
                self.index(audit_by_comment_key(id, position));
                self.changes.push(Change::Published {
                    id,
                    source: moderated.source,
                    submitted: None,
                });
            }
            ModerationAction::Remove => {
                self.put(
                    status_key(target),
                    encode(&Status::Removed {
                        article_id: article.clone(),
                    }),
                );
                self.batch.remove(listing_key(article, target.position()));
                self.batch
                    .remove(by_client_key(BY_CLIENT, &moderated.client_id, target));
                self.put(
                    listing_key(article, position),
                    encode(&ListingEntry::Removed { comment_id: target }),
                );
                self.changes.push(Change::Removed(ArticleEvent::Removed {
                    article_id: article.clone(),
                    comment_id: target,
                    position,
                }));
            }
        }
    }

    /// Lists a comment. Its status is not written: until it changes, a
    /// comment's status is what the event at its id says (see
    /// `Store::status`), which saves a write per comment.
    fn publish(&mut self, id: CommentId, source: u64, article: &ArticleId, client: &ClientId) {
        self.put(
            listing_key(article, id.position()),
            encode(&ListingEntry::Published { source }),
        );
        self.index(by_client_key(BY_CLIENT, client, id));
    }

    fn put(&mut self, key: impl AsRef<[u8]>, value: Vec<u8>) {
        self.batch.insert(key.as_ref(), value);
    }

    fn index(&mut self, key: Vec<u8>) {
        self.batch.insert(key, &[]);
    }
}

pub(super) fn get<T: for<'de> Deserialize<'de>>(
    tree: &sled::Tree,
    key: &[u8],
) -> Result<Option<T>, ViewError> {
    match tree.get(key)? {
        Some(bytes) => decode_entry(key, &bytes).map(Some),
        None => Ok(None),
    }
}

/// A view entry's value; an undecodable one names its key.
pub(crate) fn decode_entry<T: for<'de> Deserialize<'de>>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, ViewError> {
    decode(bytes).map_err(|source| ViewError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt view entry {key:?}: {source}")]
    Corrupt { key: String, source: DecodeError },
}

pub(super) fn applied(tree: &sled::Tree) -> Result<u64, ViewError> {
    Ok(tree.get(APPLIED)?.map_or(0, |bytes| u64_at_end(&bytes)))
}

pub(super) fn listing_key(article: &ArticleId, position: u64) -> Vec<u8> {
    [
        &[LISTING],
        article.as_str().as_bytes(),
        &[0],
        &position.to_be_bytes(),
    ]
    .concat()
}

pub(super) fn listing_end(article: &ArticleId) -> Vec<u8> {
    [&[LISTING], article.as_str().as_bytes(), &[1]].concat()
}

pub(super) fn status_key(id: CommentId) -> [u8; 9] {
    prefixed_id(STATUS, id)
}

pub(super) fn held_by_article_key(article: &ArticleId, id: CommentId) -> Vec<u8> {
    [
        &[HELD_BY_ARTICLE],
        article.as_str().as_bytes(),
        &[0],
        &id.position().to_be_bytes(),
    ]
    .concat()
}

pub(super) fn by_client_prefix(prefix: u8, client: &ClientId) -> Vec<u8> {
    [&[prefix], client.as_str().as_bytes(), &[0]].concat()
}

pub(super) fn by_client_key(prefix: u8, client: &ClientId, id: CommentId) -> Vec<u8> {
    [
        by_client_prefix(prefix, client).as_slice(),
        &id.position().to_be_bytes(),
    ]
    .concat()
}

pub(super) fn settings_key(article: &ArticleId) -> Vec<u8> {
    [&[SETTINGS], article.as_str().as_bytes()].concat()
}

pub(super) fn term_key(text: &str) -> Vec<u8> {
    [&[TERM], text.as_bytes()].concat()
}

pub(super) fn ban_key(client: &ClientId) -> Vec<u8> {
    [&[BAN], client.as_str().as_bytes()].concat()
}

pub(super) fn audit_by_article_key(article: &ArticleId, position: u64) -> Vec<u8> {
    [
        AUDIT_BY_ARTICLE,
        article.as_str().as_bytes(),
        &[0],
        &position.to_be_bytes(),
    ]
    .concat()
}

pub(super) fn audit_by_comment_key(id: CommentId, position: u64) -> Vec<u8> {
    [
        AUDIT_BY_COMMENT,
        &id.position().to_be_bytes(),
        &position.to_be_bytes(),
    ]
    .concat()
}

pub(super) fn prefixed_id(prefix: u8, id: CommentId) -> [u8; 9] {
    let mut key = [prefix; 9];
    key[1..].copy_from_slice(&id.position().to_be_bytes());
    key
}

/// The key's settings value, or the default.
pub(super) fn settings(
    tree: &sled::Tree,
    article: &ArticleId,
) -> Result<ArticleSettings, ViewError> {
    Ok(get(tree, &settings_key(article))?.unwrap_or_default())
}

/// Every term.
pub(super) fn terms(tree: &sled::Tree) -> Result<Vec<Term>, ViewError> {
    tree.scan_prefix([TERM])
        .map(|entry| {
            let (key, bytes) = entry?;
            decode_entry(&key, &bytes)
        })
        .collect()
}
