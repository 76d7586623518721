//! The data dir's format version, and the migration of earlier formats.
//!
//! The default tree holds `format` (one byte, [`FORMAT`]). A data dir
//! without it is either new or written by format 1 (the store before the
//! log: JSON values in tree `comments.v1`), which is migrated on first open:
//! every v1 audit entry becomes one event, at the position of the comment or
//! removal it created (so comment ids and subscribers' cursors stay valid),
//! with the comment content from the v1 records. A newer format is refused.
//!
//! What changes in a migration: audit entry ids (a screening entry takes its
//! comment's id, an approval the published id, a removal its removal
//! position); idempotency records of rejected submissions (which stored no
//! comment) are not carried over, so a retry of one is screened again.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, de::DeserializeOwned};

use super::{
    Event, Moderated, StoreError, Submitted, client_key, comment_key,
    event::{FORMAT, encode, u64_at_end},
    idempotency_id,
};
use crate::domain::{
    ArticleId, ArticleSettings, AuditAction, AuditEvent, Ban, Comment, Decision, ModerationAction,
    Term, TermEffect, Verdict,
};

const FORMAT_KEY: &[u8] = b"format";

/// Checks the data dir's format and migrates an earlier one.
pub fn to_current(db: &sled::Db) -> Result<(), StoreError> {
    match db.get(FORMAT_KEY)?.as_deref() {
        Some([format]) if *format == FORMAT => Ok(()),
        Some([format]) if *format > FORMAT => Err(StoreError::Format(format!(
            "the data dir has format {format}, written by a newer commentd; this one reads \
             format {FORMAT}: run the newer version (or restore a backup)"
        ))),
        Some(other) => Err(StoreError::Format(format!(
            "the data dir's format marker {other:?} is not one this commentd knows"
        ))),
        None => {
            let v1 = db.open_tree("comments.v1")?;
            if !v1.is_empty() {
                let events = from_v1(&v1)?;
                tracing::info!(
                    events = events.events.len(),
                    "migrating the data dir from format 1"
                );
                events.write(db)?;
            }
            db.insert(FORMAT_KEY, &[FORMAT])?;
            db.flush()?;
            db.drop_tree("comments.v1")?;
            db.flush()?;
            Ok(())
        }
    }
}

/// Events and log indexes rebuilt from a v1 tree.
pub(crate) struct Imported {
    events: BTreeMap<u64, Event>,
    keys: HashMap<String, u64>,
    dedups: Vec<(String, u64, u64)>,
}

impl Imported {
    /// Writes the events into the log tree, in the sled log's layout.
    fn write(&self, db: &sled::Db) -> Result<(), StoreError> {
        let log = db.open_tree("log.v2")?;
        log.clear()?;
        let mut batch = sled::Batch::default();
        for (position, event) in &self.events {
            batch.insert(&super::sled_log::log_key(*position)[..], encode(event));
        }
        for (key, position) in &self.keys {
            batch.insert(super::sled_log::key_key(key), &position.to_be_bytes());
        }
        for (id, position, at) in &self.dedups {
            let (key, by_time) = super::sled_log::dedup_keys(id, *at);
            batch.insert(key, encode(&(*position, *at)));
            batch.insert(by_time, &[]);
        }
        log.apply_batch(batch)?;
        db.flush()?;
        Ok(())
    }
}

#[derive(Deserialize)]
enum V1Location {
    Published(#[allow(dead_code)] ArticleId),
    Held(#[allow(dead_code)] ArticleId),
    ApprovedAs(u64),
    Rejected,
    Removed(#[allow(dead_code)] ArticleId),
}

#[derive(Deserialize)]
enum V1LogEntry {
    Published(Comment),
    Redacted,
    Removed { comment_id: u64 },
}

#[derive(Deserialize)]
struct V1Held {
    comment: Comment,
}

#[derive(Deserialize)]
struct V1Idempotency {
    fingerprint: u64,
    comment: Option<Comment>,
    recorded_at: std::time::SystemTime,
}

fn json<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| {
        StoreError::Format(format!(
            "format 1 record {:?} is unreadable: {error}",
            String::from_utf8_lossy(key)
        ))
    })
}

/// Reads a v1 tree into events.
pub(crate) fn from_v1(tree: &sled::Tree) -> Result<Imported, StoreError> {
    let mut audits: Vec<AuditEvent> = Vec::new();
    let mut locations: HashMap<u64, V1Location> = HashMap::new();
    let mut published: HashMap<u64, Comment> = HashMap::new();
    let mut removals: HashMap<u64, u64> = HashMap::new();
    let mut held: HashMap<u64, Comment> = HashMap::new();
    let mut idempotency: Vec<(String, V1Idempotency)> = Vec::new();
    let mut settings: HashMap<String, ArticleSettings> = HashMap::new();
    let mut terms: HashMap<String, Term> = HashMap::new();
    let mut bans: HashMap<String, Ban> = HashMap::new();
    for entry in tree.iter() {
        let (key, bytes) = entry?;
        let rest = String::from_utf8_lossy(key.get(1..).unwrap_or_default()).into_owned();
        match key.first() {
            Some(b'u') => audits.push(json(&key, &bytes)?),
            Some(b'i') => {
                locations.insert(u64_at_end(&key), json(&key, &bytes)?);
            }
            Some(b'l') => match json(&key, &bytes)? {
                V1LogEntry::Published(comment) => {
                    published.insert(comment.id.position(), comment);
                }
                V1LogEntry::Redacted => {}
                V1LogEntry::Removed { comment_id } => {
                    removals.insert(comment_id, u64_at_end(&key));
                }
            },
            Some(b'h') => {
                let record: V1Held = json(&key, &bytes)?;
                held.insert(u64_at_end(&key), record.comment);
            }
            Some(b'k') => {
                let (client, idempotency_key) = rest.split_once('\0').unwrap_or((&rest, ""));
                idempotency.push((idempotency_id(client, idempotency_key), json(&key, &bytes)?));
            }
            Some(b's') => {
                settings.insert(rest, json(&key, &bytes)?);
            }
            Some(b'w') => {
                terms.insert(rest, json(&key, &bytes)?);
            }
            Some(b'b') => {
                bans.insert(rest, json(&key, &bytes)?);
            }
            // Indexes (g, c, t, va, vc) are views, rebuilt from the events.
            _ => {}
        }
    }
    audits.sort_by_key(|audit| audit.id);
    let approved_from: HashMap<u64, u64> = locations
        .iter()
        .filter_map(|(&held_id, location)| match location {
            V1Location::ApprovedAs(new_id) => Some((*new_id, held_id)),
            _ => None,
        })
        .collect();
    let fingerprints: HashMap<u64, u64> = idempotency
        .iter()
        .filter_map(|(_, record)| {
            record
                .comment
                .as_ref()
                .map(|comment| (comment.id.position(), record.fingerprint))
        })
        .collect();
    let last_ban: HashMap<String, u64> = audits
        .iter()
        .filter(|audit| audit.action == AuditAction::ClientBanned)
        .filter_map(|audit| Some((audit.client_id.as_ref()?.as_str().to_owned(), audit.id)))
        .collect();

    let mut imported = Imported {
        events: BTreeMap::new(),
        keys: HashMap::new(),
        dedups: Vec::new(),
    };
    for audit in audits {
        let article = audit.article_id.clone();
        let client = audit.client_id.clone();
        let missing = |what: &str| {
            StoreError::Format(format!("format 1 audit entry {} has no {what}", audit.id))
        };
        let moderated = |action| -> Result<Moderated, StoreError> {
            let comment_id = audit.comment_id.ok_or_else(|| missing("comment"))?;
            let source = approved_from
                .get(&comment_id.position())
                .copied()
                .unwrap_or(comment_id.position());
            Ok(Moderated {
                action,
                comment_id,
                source,
                article_id: article.clone().ok_or_else(|| missing("article"))?,
                client_id: client.clone().ok_or_else(|| missing("client"))?,
                actor: audit.actor.clone(),
                note: audit.note.clone(),
                time: audit.time,
            })
        };
        let (position, event) = match audit.action {
            AuditAction::Screened => {
                let position = audit.comment_id.map_or(audit.id, |id| id.position());
                let content = audit.comment_id.and_then(|id| {
                    let id = id.position();
                    published.get(&id).or_else(|| held.get(&id)).or_else(|| {
                        match locations.get(&id) {
                            Some(V1Location::ApprovedAs(new_id)) => published.get(new_id),
                            _ => None,
                        }
                    })
                });
                let submitted = Submitted {
                    article_id: article.clone().ok_or_else(|| missing("article"))?,
                    author_name: content.map(|c| c.author_name.clone()),
                    text: content.map(|c| c.text.clone()),
                    parent_id: content.and_then(|c| c.parent_id),
                    client_id: client.clone().ok_or_else(|| missing("client"))?,
                    time: content.map_or(audit.time, |c| c.created_at),
                    verdict: Verdict {
                        decision: audit.decision.unwrap_or(Decision::Rejected),
                        reasons: audit.reasons.clone(),
                        censored_text: None,
                    },
                    fingerprint: fingerprints.get(&position).copied().unwrap_or(0),
                };
                (position, Event::Submitted(submitted))
            }
            AuditAction::Approved => {
                let held_id = audit.comment_id.ok_or_else(|| missing("comment"))?;
                let position = match locations.get(&held_id.position()) {
                    Some(V1Location::ApprovedAs(new_id)) => *new_id,
                    _ => audit.id,
                };
                let event = Moderated {
                    source: held_id.position(),
                    ..moderated(ModerationAction::Approve)?
                };
                imported.keys.insert(comment_key(held_id), position);
                (position, Event::Moderated(event))
            }
            AuditAction::Rejected => {
                let event = moderated(ModerationAction::Reject)?;
                imported
                    .keys
                    .insert(comment_key(event.comment_id), audit.id);
                (audit.id, Event::Moderated(event))
            }
            AuditAction::Removed => {
                let event = moderated(ModerationAction::Remove)?;
                let position = removals
                    .get(&event.comment_id.position())
                    .copied()
                    .unwrap_or(audit.id);
                imported
                    .keys
                    .insert(comment_key(event.comment_id), position);
                (position, Event::Moderated(event))
            }
            AuditAction::ArticleUpdated => {
                let article_id = article.clone().ok_or_else(|| missing("article"))?;
                let settings = settings
                    .get(article_id.as_str())
                    .cloned()
                    .unwrap_or_default();
                (
                    audit.id,
                    Event::ArticleUpdated {
                        article_id,
                        settings,
                        actor: audit.actor.clone(),
                        note: audit.note.clone(),
                        time: audit.time,
                    },
                )
            }
            AuditAction::TermsAdded => {
                let terms = audit
                    .note
                    .split(", ")
                    .filter(|text| !text.is_empty())
                    .map(|text| {
                        terms.get(text).cloned().unwrap_or_else(|| Term {
                            text: text.to_owned(),
                            effect: TermEffect::Hold,
                            added_by: audit.actor.clone(),
                            added_at: audit.time,
                        })
                    })
                    .collect();
                (
                    audit.id,
                    Event::TermsAdded {
                        terms,
                        actor: audit.actor.clone(),
                        note: audit.note.clone(),
                        time: audit.time,
                    },
                )
            }
            AuditAction::TermsRemoved => (
                audit.id,
                Event::TermsRemoved {
                    texts: audit.note.split(", ").map(str::to_owned).collect(),
                    actor: audit.actor.clone(),
                    note: audit.note.clone(),
                    time: audit.time,
                },
            ),
            AuditAction::ClientBanned => {
                let client_id = client.clone().ok_or_else(|| missing("client"))?;
                let current = bans
                    .get(client_id.as_str())
                    .filter(|_| last_ban.get(client_id.as_str()) == Some(&audit.id));
                let ban = current.cloned().unwrap_or_else(|| Ban {
                    client_id: client_id.clone(),
                    reason: audit.note.clone(),
                    expires_at: None,
                    created_by: audit.actor.clone(),
                    created_at: audit.time,
                });
                imported.keys.insert(client_key(&client_id), audit.id);
                (audit.id, Event::ClientBanned { ban })
            }
            AuditAction::ClientUnbanned => {
                let client_id = client.clone().ok_or_else(|| missing("client"))?;
                imported.keys.insert(client_key(&client_id), audit.id);
                (
                    audit.id,
                    Event::ClientUnbanned {
                        client_id,
                        actor: audit.actor.clone(),
                        time: audit.time,
                    },
                )
            }
        };
        if imported.events.insert(position, event).is_some() {
            return Err(StoreError::Format(format!(
                "format 1 data: two events at position {position}"
            )));
        }
    }
    for (id, record) in idempotency {
        if let Some(comment) = record.comment {
            let at = record
                .recorded_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            imported.dedups.push((id, comment.id.position(), at));
        }
    }
    Ok(imported)
}
