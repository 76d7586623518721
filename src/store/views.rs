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
pub(super) enum Change<'a> {
    Published {
        id: CommentId,
        source: u64,
        /// The content, when the event that published it carries it.
        submitted: Option<&'a Submitted>,
    },
    Removed(ArticleEvent),
}

impl<'a> Change<'a> {
    /// What the event at `position` changes in an article's public comments.
    pub fn of(position: u64, event: &'a Event) -> Option<Self> {
        match event {
            Event::Submitted(submitted) if submitted.verdict.decision == Decision::Approved => {
                Some(Self::Published {
                    id: CommentId::new(position),
                    source: position,
                    submitted: Some(submitted),
                })
            }
            Event::Moderated(moderated) => match moderated.action {
                ModerationAction::Approve => Some(Self::Published {
                    id: CommentId::new(position),
                    source: moderated.source,
                    submitted: None,
                }),
                ModerationAction::Remove => Some(Self::Removed(ArticleEvent::Removed {
                    article_id: moderated.article_id.clone(),
                    comment_id: moderated.comment_id,
                    position,
                })),
                ModerationAction::Reject => None,
            },
            _ => None,
        }
    }
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
    /// Applies the event at `position`, in position order; an event at or
    /// below the last one applied is skipped (a materialiser retrying after
    /// a failed read applies each event once).
    pub fn apply(&mut self, position: u64, event: &Event) {
        if position <= self.applied {
            return;
        }
        match event {
            Event::Submitted(submitted) => self.submitted(position, submitted),
            Event::Moderated(moderated) => self.moderated(position, moderated),
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

    fn submitted(&mut self, position: u64, submitted: &Submitted) {
        let id = CommentId::new(position);
        let article = &submitted.article_id;
        push(&mut self.audit_by_article, article, position);
        match submitted.verdict.decision {
            Decision::Approved => {
                self.publish(id, position, article, &submitted.client_id);
            }
            Decision::Held => {
                self.held.insert(id);
                insert(&mut self.held_by_article, article, id);
            }
            Decision::Rejected => {}
        }
    }

    fn moderated(&mut self, position: u64, moderated: &Moderated) {
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

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::domain::{AuthorName, CommentText, TermEffect, Verdict};

    fn article(n: u8) -> ArticleId {
        ArticleId::parse(&format!("news/{n}")).unwrap()
    }

    fn client() -> ClientId {
        ClientId::parse("reader-1").unwrap()
    }

    fn submitted(article_id: ArticleId, decision: Decision) -> Event {
        Event::Submitted(Submitted {
            article_id,
            author_name: Some(AuthorName::parse("Ann").unwrap()),
            text: Some(CommentText::parse("A fair point about the budget.", 5000).unwrap()),
            parent_id: None,
            client_id: client(),
            time: SystemTime::now(),
            verdict: Verdict {
                decision,
                reasons: vec![],
                censored_text: None,
            },
            fingerprint: 0,
        })
    }

    fn moderated(action: ModerationAction, target: u64, source: u64) -> Event {
        Event::Moderated(Moderated {
            action,
            comment_id: CommentId::new(target),
            source,
            article_id: article(1),
            client_id: client(),
            actor: "mod".to_owned(),
            note: String::new(),
            time: SystemTime::now(),
        })
    }

    /// Every view through a comment's life: published, held, approved by a
    /// moderator, removed; and what live subscribers are told.
    #[test]
    fn a_comments_life_shows_in_every_view() {
        let mut views = Views::default();
        let events = [
            submitted(article(1), Decision::Approved),  // 1: published
            submitted(article(1), Decision::Held),      // 2: held
            submitted(article(2), Decision::Rejected),  // 3: rejected
            moderated(ModerationAction::Approve, 2, 2), // 4: 2 approved as 4
            moderated(ModerationAction::Remove, 1, 1),  // 5: 1 removed
            submitted(article(1), Decision::Held),      // 6: held
        ];
        for (index, event) in events.iter().enumerate() {
            views.apply(index as u64 + 1, event);
        }
        // Applied again (a retry): skipped.
        views.apply(4, &events[3]);

        let a1 = article(1);
        assert_eq!(
            views.listing(&a1, 0, u64::MAX, 10),
            vec![
                (4, ListingEntry::Published { source: 2 }),
                (
                    5,
                    ListingEntry::Removed {
                        comment_id: CommentId::new(1)
                    }
                ),
            ]
        );
        assert_eq!(views.published(&a1, 0, 10), vec![(4, 2)]);
        assert!(views.published(&a1, 5, 10).is_empty());
        assert!(views.listing(&article(2), 0, u64::MAX, 10).is_empty());
        assert_eq!(views.held(None, CommentId::new(0), 10), vec![6]);
        assert!(views.held(Some(&a1), CommentId::new(7), 10).is_empty());
        assert_eq!(views.held_count(), 1);
        assert_eq!(
            views.status(CommentId::new(2)),
            Some(&Status::ApprovedAs(CommentId::new(4)))
        );
        assert_eq!(
            views.status(CommentId::new(1)),
            Some(&Status::Removed {
                article_id: a1.clone()
            })
        );
        assert_eq!(
            views.status(CommentId::new(6)),
            None,
            "unchanged: the event says"
        );
        assert_eq!(views.published_by(&client()), vec![CommentId::new(4)]);
        assert_eq!(views.approved_by_moderators(&client()), 1);
        assert_eq!(
            views.audit(&AuditFilter::Article(a1.clone()), 0, 10),
            vec![1, 2, 4, 5, 6]
        );
        assert_eq!(
            views.audit(&AuditFilter::Article(a1.clone()), 3, 2),
            vec![4, 5]
        );
        assert_eq!(
            views.audit(&AuditFilter::Article(article(2)), 0, 10),
            vec![3]
        );
        assert_eq!(
            views.audit(&AuditFilter::Comment(CommentId::new(2)), 0, 10),
            vec![4]
        );
        assert_eq!(
            views.audit(&AuditFilter::Comment(CommentId::new(4)), 0, 10),
            vec![4]
        );

        let told: Vec<_> = (1..)
            .zip(&events)
            .filter_map(|(position, event)| Change::of(position, event))
            .map(|change| match change {
                Change::Published { id, source, .. } => (id.position(), source),
                Change::Removed(ArticleEvent::Removed { position, .. }) => (position, 0),
                Change::Removed(_) => unreachable!(),
            })
            .collect();
        assert_eq!(told, vec![(1, 1), (4, 2), (5, 0)]);
    }

    /// Bans, terms and settings: the last event wins; an unban, a removed
    /// term forget them.
    #[test]
    fn settings_terms_and_bans_follow_their_last_event() {
        let mut views = Views::default();
        let ban = Ban {
            client_id: client(),
            reason: "spam".to_owned(),
            expires_at: None,
            created_by: "mod".to_owned(),
            created_at: SystemTime::now(),
        };
        views.apply(1, &Event::ClientBanned { ban: ban.clone() });
        assert_eq!(views.ban(&client()), Some(BanRecord { ban, position: 1 }));
        assert_eq!(views.bans().len(), 1);
        let unbanned = Event::ClientUnbanned {
            client_id: client(),
            actor: "mod".to_owned(),
            time: SystemTime::now(),
        };
        views.apply(2, &unbanned);
        assert_eq!(views.ban(&client()), None);
        assert!(views.bans().is_empty());

        let term = |text: &str, effect| Term {
            text: text.to_owned(),
            effect,
            added_by: "mod".to_owned(),
            added_at: SystemTime::now(),
        };
        let added = Event::TermsAdded {
            terms: vec![
                term("spam", TermEffect::Hold),
                term("scunthorpe", TermEffect::Allow),
            ],
            actor: "mod".to_owned(),
            note: String::new(),
            time: SystemTime::now(),
        };
        views.apply(3, &added);
        let removed = Event::TermsRemoved {
            texts: vec!["spam".to_owned()],
            actor: "mod".to_owned(),
            note: String::new(),
            time: SystemTime::now(),
        };
        views.apply(4, &removed);
        let texts: Vec<_> = views.terms().into_iter().map(|term| term.text).collect();
        assert_eq!(texts, vec!["scunthorpe"]);

        assert_eq!(views.settings(&article(1)), ArticleSettings::default());
        let closed = ArticleSettings {
            comments_closed: true,
            ..ArticleSettings::default()
        };
        let updated = Event::ArticleUpdated {
            article_id: article(1),
            settings: closed.clone(),
            actor: "mod".to_owned(),
            note: String::new(),
            time: SystemTime::now(),
        };
        views.apply(5, &updated);
        assert_eq!(views.settings(&article(1)), closed);
        assert_eq!(views.settings(&article(2)), ArticleSettings::default());
        assert_eq!(
            views.audit(&AuditFilter::Article(article(1)), 0, 10),
            vec![5]
        );
        assert!((1..=5).all(|position| Change::of(position, &updated).is_none()));
    }
}
