//! Views: what the queries read, derived from the log's events by one
//! materialiser and held in memory.
//!
//! Why memory and not sled: writing the views to sled cost a submission a
//! third of its CPU and more than half of the bytes it wrote to disk (three
//! index keys per comment, each a page delta for sled to write and
//! consolidate; benches/README.md). The log already holds every event
//! durably, so the views are rebuilt from it on every start (the log is read
//! at several hundred thousand events a second) and never written.
//!
//! Entries are small (positions and states, about 60 bytes per stored
//! comment, docs/RELIABILITY.md); a comment's content stays in its log event
//! and is read from there. The events are applied in position order, once
//! each.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    hash::Hash,
};

use crate::domain::{
    ArticleEvent, ArticleId, ArticleSettings, AuditFilter, Ban, ClientId, CommentId, Decision,
    ModerationAction, Term,
};

use super::event::{Event, Moderated, Submitted};

/// The sled tree where earlier versions wrote the views (dropped on open).
pub(super) const LEGACY_TREE: &str = "views.v2";

/// One entry of an article's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingEntry {
    /// A published comment; its content is the submission at `source`.
    Published { source: u64 },
    /// The removal of a published comment.
    Removed { comment_id: CommentId },
}

/// Where a comment id stands.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    pub ban: Ban,
    pub position: u64,
}

/// A change to an article's public comments, for live subscribers.
pub(super) enum Change {
    Published {
        id: CommentId,
        source: u64,
        /// The content, when the event that published it carries it.
        submitted: Option<Box<Submitted>>,
    },
    Removed(ArticleEvent),
}

/// Every view, as of the event at `applied`.
#[derive(Debug, Default)]
pub(super) struct Views {
    applied: u64,
    /// Per article, by position: its published comments and removals.
    listings: HashMap<ArticleId, BTreeMap<u64, ListingEntry>>,
    /// Where a comment stands, once it changed (before, the event at its
    /// id says: see `Store::status`), which saves an entry per comment.
    statuses: HashMap<CommentId, Status>,
    held: BTreeSet<CommentId>,
    held_by_article: HashMap<ArticleId, BTreeSet<CommentId>>,
    /// A client's published comments (what a ban removes).
    published_by: HashMap<ClientId, BTreeSet<CommentId>>,
    /// How many of a client's comments moderators approved (trust).
    approved_by_moderators: HashMap<ClientId, u64>,
    settings: HashMap<ArticleId, ArticleSettings>,
    terms: BTreeMap<String, Term>,
    bans: BTreeMap<ClientId, BanRecord>,
    /// Audit indexes: positions of an article's events, and of the
    /// moderation of a comment (its own submission is found at its id).
    audit_by_article: HashMap<ArticleId, Vec<u64>>,
    audit_by_comment: HashMap<CommentId, Vec<u64>>,
}

impl Views {
    /// Applies the event at `position` (after every earlier one), adding
    /// what live subscribers should hear to `changes`.
    pub fn apply(&mut self, position: u64, event: &Event, changes: &mut Vec<Change>) {
        debug_assert!(position > self.applied, "events are applied once, in order");
        match event {
            Event::Submitted(submitted) => self.submitted(position, submitted, changes),
            Event::Moderated(moderated) => self.moderated(position, moderated, changes),
            Event::ArticleUpdated {
                article_id,
                settings,
                ..
            } => {
                self.settings.insert(article_id.clone(), settings.clone());
                push(&mut self.audit_by_article, article_id, position);
            }
            Event::TermsAdded { terms, .. } => {
                for term in terms {
                    self.terms.insert(term.text.clone(), term.clone());
                }
            }
            Event::TermsRemoved { texts, .. } => {
                for text in texts {
                    self.terms.remove(text);
                }
            }
            Event::ClientBanned { ban } => {
                let record = BanRecord {
                    ban: ban.clone(),
                    position,
                };
                self.bans.insert(ban.client_id.clone(), record);
            }
            Event::ClientUnbanned { client_id, .. } => {
                self.bans.remove(client_id);
            }
        }
        self.applied = position;
    }

    fn submitted(&mut self, position: u64, submitted: &Submitted, changes: &mut Vec<Change>) {
        let id = CommentId::new(position);
        let article = &submitted.article_id;
        push(&mut self.audit_by_article, article, position);
        match submitted.verdict.decision {
            Decision::Approved => {
                self.publish(id, position, article, &submitted.client_id);
                changes.push(Change::Published {
                    id,
                    source: position,
                    submitted: Some(Box::new(submitted.clone())),
                });
            }
            Decision::Held => {
                self.held.insert(id);
                insert(&mut self.held_by_article, article, id);
            }
            Decision::Rejected => {}
        }
    }

    fn moderated(&mut self, position: u64, moderated: &Moderated, changes: &mut Vec<Change>) {
        let target = moderated.comment_id;
        let article = &moderated.article_id;
        push(&mut self.audit_by_article, article, position);
        push(&mut self.audit_by_comment, &target, position);
        match moderated.action {
            ModerationAction::Approve | ModerationAction::Reject => {
                self.held.remove(&target);
                remove(&mut self.held_by_article, article, &target);
                if moderated.action == ModerationAction::Reject {
                    self.statuses.insert(target, Status::Rejected);
                    return;
                }
                let id = CommentId::new(position);
                self.statuses.insert(target, Status::ApprovedAs(id));
                self.publish(id, moderated.source, article, &moderated.client_id);
                *slot(&mut self.approved_by_moderators, &moderated.client_id) += 1;
                push(&mut self.audit_by_comment, &id, position);
                changes.push(Change::Published {
                    id,
                    source: moderated.source,
                    submitted: None,
                });
            }
            ModerationAction::Remove => {
                self.statuses.insert(
                    target,
                    Status::Removed {
                        article_id: article.clone(),
                    },
                );
                remove(&mut self.published_by, &moderated.client_id, &target);
                let listing = slot(&mut self.listings, article);
                listing.remove(&target.position());
                listing.insert(position, ListingEntry::Removed { comment_id: target });
                changes.push(Change::Removed(ArticleEvent::Removed {
                    article_id: article.clone(),
                    comment_id: target,
                    position,
                }));
            }
        }
    }

    fn publish(&mut self, id: CommentId, source: u64, article: &ArticleId, client: &ClientId) {
        slot(&mut self.listings, article).insert(id.position(), ListingEntry::Published { source });
        insert(&mut self.published_by, client, id);
    }

    /// A comment's status once it changed.
    pub fn status(&self, id: CommentId) -> Option<&Status> {
        self.statuses.get(&id)
    }

    /// Up to `limit` entries of an article's listing at positions in
    /// `from..until`, in position order.
    pub fn listing(
        &self,
        article: &ArticleId,
        from: u64,
        until: u64,
        limit: usize,
    ) -> Vec<(u64, ListingEntry)> {
        match self.listings.get(article) {
            Some(listing) if from < until => listing
                .range(from..until)
                .take(limit)
                .map(|(&position, &entry)| (position, entry))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Up to `limit` published comments of an article from `from`: their
    /// ids' positions and their content's.
    pub fn published(&self, article: &ArticleId, from: u64, limit: usize) -> Vec<(u64, u64)> {
        let Some(listing) = self.listings.get(article) else {
            return Vec::new();
        };
        listing
            .range(from..)
            .filter_map(|(&position, entry)| match entry {
                ListingEntry::Published { source } => Some((position, *source)),
                ListingEntry::Removed { .. } => None,
            })
            .take(limit)
            .collect()
    }

    /// Up to `limit` held comments from `from`, of one article or all.
    pub fn held(&self, article: Option<&ArticleId>, from: CommentId, limit: usize) -> Vec<u64> {
        let held = match article {
            Some(article) => match self.held_by_article.get(article) {
                Some(held) => held,
                None => return Vec::new(),
            },
            None => &self.held,
        };
        held.range(from..)
            .take(limit)
            .map(|id| id.position())
            .collect()
    }

    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    pub fn approved_by_moderators(&self, client: &ClientId) -> u64 {
        self.approved_by_moderators
            .get(client)
            .copied()
            .unwrap_or(0)
    }

    pub fn published_by(&self, client: &ClientId) -> Vec<CommentId> {
        self.published_by
            .get(client)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// An article's settings (defaults when never set).
    pub fn settings(&self, article: &ArticleId) -> ArticleSettings {
        self.settings.get(article).cloned().unwrap_or_default()
    }

    /// Every term, in term order.
    pub fn terms(&self) -> Vec<Term> {
        self.terms.values().cloned().collect()
    }

    pub fn ban(&self, client: &ClientId) -> Option<BanRecord> {
        self.bans.get(client).cloned()
    }

    /// Every ban, in client order.
    pub fn bans(&self) -> Vec<Ban> {
        self.bans
            .values()
            .map(|record| record.ban.clone())
            .collect()
    }

    /// Up to `limit` positions from `from` in an audit index (an article's
    /// events, or a comment's moderation).
    pub fn audit(&self, filter: &AuditFilter, from: u64, limit: usize) -> Vec<u64> {
        let positions = match filter {
            AuditFilter::All => None,
            AuditFilter::Article(article) => self.audit_by_article.get(article),
            AuditFilter::Comment(id) => self.audit_by_comment.get(id),
        };
        let Some(positions) = positions else {
            return Vec::new();
        };
        let start = positions.partition_point(|&position| position < from);
        positions[start..].iter().take(limit).copied().collect()
    }
}

/// The value at `key`, inserted empty when missing (the key is cloned only
/// then: most events name an article or client seen before).
fn slot<'a, K: Eq + Hash + Clone, V: Default>(map: &'a mut HashMap<K, V>, key: &K) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.clone(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

fn push<K: Eq + Hash + Clone>(index: &mut HashMap<K, Vec<u64>>, key: &K, position: u64) {
    slot(index, key).push(position);
}

fn insert<K: Eq + Hash + Clone>(
    index: &mut HashMap<K, BTreeSet<CommentId>>,
    key: &K,
    id: CommentId,
) {
    slot(index, key).insert(id);
}

/// Removes `id` from the set at `key`, and the set once empty.
fn remove<K: Eq + Hash + Clone>(
    index: &mut HashMap<K, BTreeSet<CommentId>>,
    key: &K,
    id: &CommentId,
) {
    if let Some(set) = index.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            index.remove(key);
        }
    }
}
