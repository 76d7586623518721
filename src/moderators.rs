//! The moderators' use cases: the review queue, actions on comments,
//! article settings, term lists, bans and the audit log.
//!
//! Every change goes through the store (durable, audited, and published to
//! live subscribers by the store's commit listener); term changes also swap
//! the pipeline's live [`TermList`].

use std::{sync::Arc, time::SystemTime};

use crate::{
    domain::{
        ArticleId, ArticleSettings, AuditEvent, Ban, ClientId, Comment, CommentId,
        ModerationAction, Term, TermEffect,
    },
    error::Error,
    paging,
    screening::TermList,
    store::{AuditFilter, HeldComment, Store},
};

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
        let after = paging::decode(page_token, &scope)?.map(CommentId::new);
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
        Ok(self.store.moderate(id, action, actor, note).await?)
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
        self.store.update_article(article, &settings, actor).await?;
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
        self.store.add_terms(&terms, actor).await?;
        self.terms.replace(&self.store.terms()?);
        Ok(terms)
    }

    pub async fn remove_terms(&self, raw: &[String], actor: &str) -> Result<usize, Error> {
        let texts = normalise_terms(raw)?;
        let removed = self.store.remove_terms(&texts, actor).await?;
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
        let removed = self.store.ban(&ban, remove_comments).await?;
        Ok((ban, removed))
    }

    pub async fn unban(&self, client_id: &ClientId, actor: &str) -> Result<(), Error> {
        Ok(self.store.unban(client_id, actor).await?)
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
        let after = paging::decode(page_token, &scope)?;
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

fn check_note(field: &'static str, note: &str) -> Result<(), Error> {
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    Ok(())
}

fn normalise_terms(raw: &[String]) -> Result<Vec<String>, Error> {
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
