//! Conversions between protobuf messages and domain types.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::pb;
use crate::{
    comments::SubmitOutcome,
    domain::{
        ArticleEvent, ArticleId, ArticleSettings, AuditAction, AuditEvent, AuthorName, Ban,
        ClientId, Comment, CommentId, CommentState, CommentText, Decision, Filter, HeldComment,
        IdempotencyKey, ModerationMode, Reason, Severity, Submission, Term, TermEffect, Verdict,
        Violations,
    },
    error::Error,
};

/// Parses a `SubmitCommentRequest`, reporting every bad field at once.
pub fn parse_submission(
    request: &pb::SubmitCommentRequest,
    max_text_chars: usize,
) -> Result<Submission, Error> {
    let mut violations = Violations::default();
    let article_id = violations.check(ArticleId::parse(&request.article_id));
    let author_name = violations.check(AuthorName::parse(&request.author_name));
    let text = violations.check(CommentText::parse(&request.text, max_text_chars));
    let parent_id = violations.check(CommentId::parse_optional("parent_id", &request.parent_id));
    let client_id = violations.check(ClientId::parse(&request.client_id));
    let idempotency_key =
        violations.check(IdempotencyKey::parse_optional(&request.idempotency_key));
    violations.into_result()?;
    match (
        article_id,
        author_name,
        text,
        parent_id,
        client_id,
        idempotency_key,
    ) {
        (
            Some(article_id),
            Some(author_name),
            Some(text),
            Some(parent_id),
            Some(client_id),
            Some(idempotency_key),
        ) => Ok(Submission {
            article_id,
            author_name,
            text,
            parent_id,
            client_id,
            idempotency_key,
        }),
        _ => unreachable!("every field without a violation was parsed"),
    }
}

/// Parses a `CheckCommentRequest`; the author name is optional there.
pub fn parse_check(
    request: &pb::CheckCommentRequest,
    max_text_chars: usize,
) -> Result<(Option<AuthorName>, CommentText), Error> {
    let mut violations = Violations::default();
    let author_name = if request.author_name.trim().is_empty() {
        None
    } else {
        violations.check(AuthorName::parse(&request.author_name))
    };
    let text = violations.check(CommentText::parse(&request.text, max_text_chars));
    violations.into_result()?;
    Ok((author_name, text.expect("checked")))
}

/// Page sizes: 0 means default; negative is refused.
pub fn parse_page_size(page_size: i32) -> Result<usize, Error> {
    usize::try_from(page_size).map_err(|_| Error::invalid("page_size", "must not be negative"))
}

pub fn timestamp(time: SystemTime) -> prost_types::Timestamp {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0),
    }
}

pub fn from_timestamp(
    field: &'static str,
    timestamp: prost_types::Timestamp,
) -> Result<SystemTime, Error> {
    // google.protobuf.Timestamp's range ends at 9999-12-31T23:59:59Z;
    // later values are not timestamps other clients can read.
    const MAX_SECONDS: i64 = 253_402_300_799;
    if timestamp.seconds > MAX_SECONDS {
        return Err(Error::invalid(
            field,
            "must be no later than 9999-12-31T23:59:59Z",
        ));
    }
    let seconds = u64::try_from(timestamp.seconds)
        .map_err(|_| Error::invalid(field, "must be after 1970"))?;
    let nanos = u32::try_from(timestamp.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| Error::invalid(field, "nanos must be in 0..1e9"))?;
    UNIX_EPOCH
        .checked_add(Duration::new(seconds, nanos))
        .ok_or_else(|| Error::invalid(field, "is out of range"))
}

impl From<Comment> for pb::Comment {
    fn from(comment: Comment) -> Self {
        Self {
            id: comment.id.to_string(),
            article_id: comment.article_id.as_str().to_owned(),
            author_name: comment.author_name.as_str().to_owned(),
            text: comment.text.as_str().to_owned(),
            parent_id: comment
                .parent_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            create_time: Some(timestamp(comment.created_at)),
            state: match comment.state {
                CommentState::Published => pb::CommentState::Published,
                CommentState::Held => pb::CommentState::Held,
            } as i32,
        }
    }
}

fn decision(decision: Decision) -> pb::Decision {
    match decision {
        Decision::Approved => pb::Decision::Approved,
        Decision::Held => pb::Decision::Held,
        Decision::Rejected => pb::Decision::Rejected,
    }
}

impl From<Reason> for pb::Reason {
    fn from(reason: Reason) -> Self {
        Self {
            filter: match reason.filter {
                Filter::Profanity => pb::Filter::Profanity,
                Filter::Spam => pb::Filter::Spam,
                Filter::Duplicate => pb::Filter::Duplicate,
                Filter::Terms => pb::Filter::Terms,
                Filter::Ban => pb::Filter::Ban,
                Filter::Policy => pb::Filter::Policy,
                Filter::Toxicity => pb::Filter::Toxicity,
            } as i32,
            code: reason.code,
            message: reason.message,
            category: reason.category.unwrap_or_default(),
            severity: match reason.severity {
                None => pb::Severity::Unspecified,
                Some(Severity::Mild) => pb::Severity::Mild,
                Some(Severity::Moderate) => pb::Severity::Moderate,
                Some(Severity::Severe) => pb::Severity::Severe,
            } as i32,
            decision: decision(reason.decision) as i32,
        }
    }
}

impl From<Verdict> for pb::Verdict {
    fn from(verdict: Verdict) -> Self {
        Self {
            decision: decision(verdict.decision) as i32,
            reasons: verdict.reasons.into_iter().map(Into::into).collect(),
            censored_text: verdict.censored_text.unwrap_or_default(),
        }
    }
}

impl From<SubmitOutcome> for pb::SubmitCommentResponse {
    fn from(outcome: SubmitOutcome) -> Self {
        Self {
            verdict: Some(outcome.verdict.into()),
            comment: outcome.comment.map(Into::into),
            replayed: outcome.replayed,
        }
    }
}

impl From<ArticleEvent> for pb::SubscribeCommentsResponse {
    fn from(event: ArticleEvent) -> Self {
        let event = match event {
            ArticleEvent::Published(comment) => {
                pb::subscribe_comments_response::Event::Comment(comment.into())
            }
            ArticleEvent::Removed {
                comment_id,
                position,
                ..
            } => pb::subscribe_comments_response::Event::CommentRemoved(pb::CommentRemoved {
                comment_id: comment_id.to_string(),
                cursor: CommentId::new(position).to_string(),
            }),
        };
        Self { event: Some(event) }
    }
}

impl From<HeldComment> for pb::HeldComment {
    fn from(held: HeldComment) -> Self {
        Self {
            client_id: held.comment.client_id.as_str().to_owned(),
            comment: Some(held.comment.into()),
            verdict: Some(held.verdict.into()),
        }
    }
}

impl From<ArticleSettings> for pb::ArticleSettings {
    fn from(settings: ArticleSettings) -> Self {
        Self {
            comments_closed: settings.comments_closed,
            moderation_mode: match settings.moderation_mode {
                ModerationMode::Post => pb::ModerationMode::Post,
                ModerationMode::Pre => pb::ModerationMode::Pre,
            } as i32,
            auto_close_time: settings.auto_close_at.map(timestamp),
            newcomer_approvals_required: settings.newcomer_approvals_required,
        }
    }
}

impl From<Term> for pb::Term {
    fn from(term: Term) -> Self {
        Self {
            text: term.text,
            effect: match term.effect {
                TermEffect::Hold => pb::TermEffect::Hold,
                TermEffect::Reject => pb::TermEffect::Reject,
                TermEffect::Allow => pb::TermEffect::Allow,
            } as i32,
            added_by: term.added_by,
            add_time: Some(timestamp(term.added_at)),
        }
    }
}

impl From<Ban> for pb::Ban {
    fn from(ban: Ban) -> Self {
        Self {
            client_id: ban.client_id.as_str().to_owned(),
            reason: ban.reason,
            expire_time: ban.expires_at.map(timestamp),
            created_by: ban.created_by,
            create_time: Some(timestamp(ban.created_at)),
        }
    }
}

impl From<AuditEvent> for pb::AuditEvent {
    fn from(event: AuditEvent) -> Self {
        Self {
            id: CommentId::new(event.id).to_string(),
            time: Some(timestamp(event.time)),
            actor: event.actor,
            action: match event.action {
                AuditAction::Screened => "screened",
                AuditAction::Approved => "approved",
                AuditAction::Rejected => "rejected",
                AuditAction::Removed => "removed",
                AuditAction::ArticleUpdated => "article_updated",
                AuditAction::TermsAdded => "terms_added",
                AuditAction::TermsRemoved => "terms_removed",
                AuditAction::ClientBanned => "client_banned",
                AuditAction::ClientUnbanned => "client_unbanned",
            }
            .to_owned(),
            article_id: event
                .article_id
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            comment_id: event
                .comment_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            client_id: event
                .client_id
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            decision: event.decision.map_or(pb::Decision::Unspecified, decision) as i32,
            reasons: event.reasons.into_iter().map(Into::into).collect(),
            note: event.note,
        }
    }
}
