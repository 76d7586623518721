//! The moderators' use cases: the review queue, actions on comments,
//! article settings, term lists, bans and the audit log.
//!
//! The rules live here: what an approval, rejection, removal, ban or term
//! change means is decided from the store's views and handed to the store as
//! events (durable, audited, and published to live subscribers by the
//! store's materialiser). Two moderators acting on one comment at once are
//! kept apart by a conditional append: each comment takes at most one
//! moderation event, so the second append conflicts. Term changes also swap
//! the pipeline's live [`TermList`].

use std::{sync::Arc, time::SystemTime};

use crate::{
    domain::{
        ArticleId, ArticleSettings, AuditEvent, AuditFilter, Ban, ClientId, Comment, CommentId,
        CommentState, HeldComment, ModerationAction, Term, TermEffect,
    },
    error::Error,
    paging,
    screening::TermList,
    store::{
        Append, Event, LogError, Moderated, Status, Store, StoreError, client_key, comment_key,
    },
};

/// Attempts of a ban that removes comments, when a removal races with it.
const BAN_ATTEMPTS: usize = 3;

/// Most terms per AddTerms/RemoveTerms call.
pub const MAX_TERMS_PER_CALL: usize = 1000;
/// Longest note or ban reason.
pub const MAX_NOTE_CHARS: usize = 1000;

/// A page of results and the token for the next.
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

pub struct Moderators {
    store: Store,
    terms: Arc<TermList>,
}

impl Moderators {
    pub fn new(store: Store, terms: Arc<TermList>) -> Self {
        Self { store, terms }
    }

    /// The review queue, oldest first.
    pub fn held(
        &self,
        article: Option<&ArticleId>,
        page_size: usize,
        page_token: &str,
    ) -> Result<Paged<HeldComment>, Error> {
        let scope = format!("held:{}", article.map_or("*", ArticleId::as_str));
        let after =
            paging::decode(page_token, &scope, self.store.last_position())?.map(CommentId::new);
        let page = self
            .store
            .held_after(article, after, paging::page_size(page_size))?;
        let next_page_token = match page.items.last() {
            Some(last) if page.more => Some(paging::encode(&scope, last.comment.id.position())),
            _ => None,
        };
        Ok(Paged {
            items: page.items,
            next_page_token,
        })
    }

    pub async fn moderate(
        &self,
        id: CommentId,
        action: ModerationAction,
        actor: &str,
        note: &str,
    ) -> Result<Comment, Error> {
        check_note("note", note)?;
        let status = self
            .store
            .status(id)?
            .ok_or_else(|| Error::NotFound(format!("comment {id} not found")))?;
        let verb = match action {
            ModerationAction::Approve => "approved",
            ModerationAction::Reject => "rejected",
            ModerationAction::Remove => "removed",
        };
        let wrong_state = |what: &str| {
            Error::FailedPrecondition(format!("comment {id} is {what}; it cannot be {verb}"))
        };
        let (article_id, source) = match (action, status) {
            (ModerationAction::Approve | ModerationAction::Reject, Status::Held { article_id }) => {
                (article_id, id.position())
            }
            (ModerationAction::Remove, Status::Published { article_id, source }) => {
                (article_id, source)
            }
            (_, Status::Held { .. }) => return Err(wrong_state("held")),
            (_, Status::Published { .. }) => return Err(wrong_state("published")),
            (_, Status::ApprovedAs(new_id)) => {
                return Err(wrong_state(&format!("already approved (now {new_id})")));
            }
            (_, Status::Rejected) => return Err(wrong_state("already rejected")),
            (_, Status::Removed { .. }) => return Err(wrong_state("already removed")),
        };
        let submitted = self
            .store
            .submission(source)?
            .ok_or_else(|| Error::NotFound(format!("comment {id} not found")))?;
        let mut append = Append::new(Event::Moderated(Moderated {
            action,
            comment_id: id,
            source,
            article_id,
            client_id: submitted.client_id.clone(),
            actor: actor.to_owned(),
            note: note.to_owned(),
            time: SystemTime::now(),
        }))
        .expecting(comment_key(id), None);
        if action != ModerationAction::Approve {
            // A removed or rejected comment's text does not stay on disk.
            append = append.erasing(source);
        }
        let appended = self.store.append_one(append).await.map_err(|error| {
            conflict_as(error, || wrong_state("being moderated by someone else"))
        })?;
        Ok(match action {
            ModerationAction::Approve => {
                submitted.comment_as(CommentId::new(appended.position()), CommentState::Published)
            }
            ModerationAction::Reject => submitted.comment_as(id, CommentState::Held),
            ModerationAction::Remove => submitted.comment_as(id, CommentState::Published),
        })
    }

    pub fn article(&self, article: &ArticleId) -> Result<ArticleSettings, Error> {
        Ok(self.store.article(article)?)
    }

    pub async fn update_article(
        &self,
        article: &ArticleId,
        settings: ArticleSettings,
        actor: &str,
    ) -> Result<ArticleSettings, Error> {
        self.store
            .append_one(Append::new(Event::ArticleUpdated {
                article_id: article.clone(),
                settings: settings.clone(),
                actor: actor.to_owned(),
                note: format!("{settings:?}"),
                time: SystemTime::now(),
            }))
            .await?;
        Ok(settings)
    }

    pub fn terms(&self) -> Result<Vec<Term>, Error> {
        Ok(self.store.terms()?)
    }

    pub async fn add_terms(
        &self,
        raw: &[String],
        effect: TermEffect,
        actor: &str,
    ) -> Result<Vec<Term>, Error> {
        let texts = normalise_terms(raw)?;
        let now = SystemTime::now();
        let terms: Vec<Term> = texts
            .into_iter()
            .map(|text| Term {
                text,
                effect,
                added_by: actor.to_owned(),
                added_at: now,
            })
            .collect();
        self.store
            .append_one(Append::new(Event::TermsAdded {
                terms: terms.clone(),
                actor: actor.to_owned(),
                note: describe_terms(terms.iter().map(|t| t.text.as_str())),
                time: now,
            }))
            .await?;
        self.terms.replace(&self.store.terms()?);
        Ok(terms)
    }

    pub async fn remove_terms(&self, raw: &[String], actor: &str) -> Result<usize, Error> {
        let texts = normalise_terms(raw)?;
        let existing = self.store.terms()?;
        let removed = texts
            .iter()
            .filter(|text| existing.iter().any(|term| &term.text == *text))
            .count();
        self.store
            .append_one(Append::new(Event::TermsRemoved {
                note: describe_terms(texts.iter().map(String::as_str)),
                texts,
                actor: actor.to_owned(),
                time: SystemTime::now(),
            }))
            .await?;
        self.terms.replace(&self.store.terms()?);
        Ok(removed)
    }

    pub fn bans(&self) -> Result<Vec<Ban>, Error> {
        Ok(self.store.bans()?)
    }

    pub async fn ban(
        &self,
        client_id: ClientId,
        reason: &str,
        expires_at: Option<SystemTime>,
        remove_comments: bool,
        actor: &str,
    ) -> Result<(Ban, Vec<CommentId>), Error> {
        check_note("reason", reason)?;
        if expires_at.is_some_and(|at| at <= SystemTime::now()) {
            return Err(Error::invalid("expire_time", "must be in the future"));
        }
        let ban = Ban {
            client_id,
            reason: reason.to_owned(),
            expires_at,
            created_by: actor.to_owned(),
            created_at: SystemTime::now(),
        };
        for attempt in 1..=BAN_ATTEMPTS {
            let mut batch = vec![
                Append::new(Event::ClientBanned { ban: ban.clone() })
                    .about(client_key(&ban.client_id)),
            ];
            let mut removed = Vec::new();
            if remove_comments {
                for id in self.store.published_by(&ban.client_id)? {
                    let Some(Status::Published { article_id, source }) = self.store.status(id)?
                    else {
                        continue;
                    };
                    batch.push(
                        Append::new(Event::Moderated(Moderated {
                            action: ModerationAction::Remove,
                            comment_id: id,
                            source,
                            article_id,
                            client_id: ban.client_id.clone(),
                            actor: actor.to_owned(),
                            note: format!("client banned: {reason}"),
                            time: ban.created_at,
                        }))
                        .expecting(comment_key(id), None)
                        .erasing(source),
                    );
                    removed.push(id);
                }
            }
            match self.store.append(batch).await {
                Ok(_) => return Ok((ban, removed)),
                // A moderator removed one of the comments meanwhile: read
                // again once the views show it.
                Err(StoreError::Log(LogError::Conflict { .. })) if attempt < BAN_ATTEMPTS => {
                    self.store.caught_up().await?;
                }
                Err(error) => {
                    return Err(conflict_as(error, || {
                        Error::FailedPrecondition(
                            "the client's comments kept changing; retry the ban".to_owned(),
                        )
                    }));
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    pub async fn unban(&self, client_id: &ClientId, actor: &str) -> Result<(), Error> {
        let record = self.store.ban_of(client_id)?.ok_or_else(|| {
            Error::NotFound(format!("client {} is not banned", client_id.as_str()))
        })?;
        self.store
            .append_one(
                Append::new(Event::ClientUnbanned {
                    client_id: client_id.clone(),
                    actor: actor.to_owned(),
                    time: SystemTime::now(),
                })
                .expecting(client_key(client_id), Some(record.position)),
            )
            .await
            .map_err(|error| {
                conflict_as(error, || {
                    Error::FailedPrecondition(format!(
                        "the ban of client {} changed meanwhile; read it again",
                        client_id.as_str()
                    ))
                })
            })?;
        Ok(())
    }

    pub fn audit(
        &self,
        filter: AuditFilter,
        page_size: usize,
        page_token: &str,
    ) -> Result<Paged<AuditEvent>, Error> {
        let scope = match &filter {
            AuditFilter::All => "audit:*".to_owned(),
            AuditFilter::Article(article) => format!("audit:a:{article}"),
            AuditFilter::Comment(id) => format!("audit:c:{id}"),
        };
        let after = paging::decode(page_token, &scope, self.store.last_position())?;
        let page = self
            .store
            .audit_after(&filter, after, paging::page_size(page_size))?;
        let next_page_token = match page.items.last() {
            Some(last) if page.more => Some(paging::encode(&scope, last.id)),
            _ => None,
        };
        Ok(Paged {
            items: page.items,
            next_page_token,
        })
    }
}

/// A conflicting append as `conflict`, any other store error as it is.
fn conflict_as(error: StoreError, conflict: impl FnOnce() -> Error) -> Error {
    match error {
        StoreError::Log(LogError::Conflict { .. }) => conflict(),
        error => error.into(),
    }
}

fn describe_terms<'a>(terms: impl Iterator<Item = &'a str>) -> String {
    terms.collect::<Vec<_>>().join(", ")
}

fn check_note(field: &'static str, note: &str) -> Result<(), Error> {
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    Ok(())
}

pub(crate) fn normalise_terms(raw: &[String]) -> Result<Vec<String>, Error> {
    if raw.is_empty() {
        return Err(Error::invalid("terms", "must not be empty"));
    }
    if raw.len() > MAX_TERMS_PER_CALL {
        return Err(Error::invalid(
            "terms",
            format!("at most {MAX_TERMS_PER_CALL} terms per call"),
        ));
    }
    let mut texts = raw
        .iter()
        .map(|term| Term::normalise(term))
        .collect::<Result<Vec<_>, _>>()?;
    texts.sort();
    texts.dedup();
    Ok(texts)
}
