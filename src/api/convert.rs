//! Conversions between protobuf messages and domain types.

use std::time::UNIX_EPOCH;

use super::pb;
use crate::{
    comments::SubmitOutcome,
    domain::{
        ArticleEvent, ArticleId, AuthorName, ClientId, Comment, CommentId, CommentState,
        CommentText, Decision, Filter, IdempotencyKey, Reason, Severity, Submission, Verdict,
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

/// Parses a `CheckCommentRequest`.
pub fn parse_check(
    request: &pb::CheckCommentRequest,
    max_text_chars: usize,
) -> Result<(AuthorName, CommentText), Error> {
    let mut violations = Violations::default();
    let author_name = violations.check(AuthorName::parse(&request.author_name));
    let text = violations.check(CommentText::parse(&request.text, max_text_chars));
    violations.into_result()?;
    Ok((author_name.expect("checked"), text.expect("checked")))
}

/// Page sizes: 0 means default; negative is refused.
pub fn parse_page_size(page_size: i32) -> Result<usize, Error> {
    usize::try_from(page_size).map_err(|_| Error::invalid("page_size", "must not be negative"))
}

impl From<Comment> for pb::Comment {
    fn from(comment: Comment) -> Self {
        let since_epoch = comment
            .created_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            id: comment.id.to_string(),
            article_id: comment.article_id.as_str().to_owned(),
            author_name: comment.author_name.as_str().to_owned(),
            text: comment.text.as_str().to_owned(),
            parent_id: comment
                .parent_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            create_time: Some(prost_types::Timestamp {
                seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0),
            }),
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
        };
        Self { event: Some(event) }
    }
}
