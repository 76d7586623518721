//! What the fuzz targets in `fuzz/` run, one function per target, so that
//! the targets stay one line each and `cargo test` can replay their
//! regression inputs (`fuzz/regressions/<target>/`) through the same code.
//!
//! Compiled only for `cargo fuzz` (`--cfg fuzzing`) and the unit tests; it
//! is not part of the library's API. Every function here must never panic,
//! whatever the bytes.

use std::sync::{Mutex, OnceLock};

use prost::Message;

use crate::{
    api::{
        convert::{from_timestamp, parse_check, parse_page_size, parse_submission, timestamp},
        pb,
    },
    domain::{ArticleId, AuthorName, ClientId, CommentId, CommentText, Term, TermEffect},
    moderators::normalise_terms,
    paging,
    screening::{Models, Pipeline, ProfanityPolicy, SpamPolicy, TermList, ToxicityPolicy},
    store::{
        Event,
        event::{self, u64_at_end},
        migrate,
    },
};

/// Target `decode_requests`: `data` decoded as every request that carries
/// user input, each then validated as its handler does (`src/api/*.rs`).
pub fn decode_requests(data: &[u8]) {
    if let Ok(request) = pb::SubmitCommentRequest::decode(data) {
        if let Ok(submission) = parse_submission(&request, CommentText::DEFAULT_MAX_CHARS) {
            let _ = submission.fingerprint();
        }
        let _ = parse_submission(&request, 16);
    }
    if let Ok(request) = pb::CheckCommentRequest::decode(data) {
        let _ = parse_check(&request, CommentText::DEFAULT_MAX_CHARS);
    }
    if let Ok(request) = pb::GetCommentRequest::decode(data) {
        let _ = CommentId::parse("comment_id", &request.comment_id);
    }
    if let Ok(request) = pb::ListCommentsRequest::decode(data)
        && let Ok(article) = ArticleId::parse(&request.article_id)
    {
        page(
            &format!("comments:{article}"),
            request.page_size,
            &request.page_token,
        );
    }
    if let Ok(request) = pb::SubscribeCommentsRequest::decode(data) {
        let _ = ArticleId::parse(&request.article_id);
        let _ = CommentId::parse_optional("after_comment_id", &request.after_comment_id);
    }
    if let Ok(request) = pb::ListHeldCommentsRequest::decode(data) {
        let article = if request.article_id.is_empty() {
            Ok(None)
        } else {
            ArticleId::parse(&request.article_id).map(Some)
        };
        if let Ok(article) = article {
            let scope = format!("held:{}", article.as_ref().map_or("*", ArticleId::as_str));
            page(&scope, request.page_size, &request.page_token);
        }
    }
    if let Ok(request) = pb::ModerateCommentRequest::decode(data) {
        let _ = CommentId::parse("comment_id", &request.comment_id);
        let _ = request.action();
    }
    if let Ok(request) = pb::UpdateArticleRequest::decode(data) {
        let _ = ArticleId::parse(&request.article_id);
        let settings = request.settings.unwrap_or_default();
        let _ = settings.moderation_mode();
        if let Some(time) = settings.auto_close_time {
            time_round_trip("settings.auto_close_time", time);
        }
    }
    if let Ok(request) = pb::GetArticleRequest::decode(data) {
        let _ = ArticleId::parse(&request.article_id);
    }
    if let Ok(request) = pb::AddTermsRequest::decode(data) {
        let _ = request.effect();
        if let Ok(texts) = normalise_terms(&request.terms) {
            // The normalised terms build the matcher the pipeline uses.
            let terms: Vec<Term> = texts
                .into_iter()
                .map(|text| Term {
                    text,
                    effect: TermEffect::Hold,
                    added_by: String::new(),
                    added_at: std::time::UNIX_EPOCH,
                })
                .collect();
            let _ = TermList::new(&terms).current().find("a comment text");
        }
    }
    if let Ok(request) = pb::RemoveTermsRequest::decode(data) {
        let _ = normalise_terms(&request.terms);
    }
    if let Ok(request) = pb::BanClientRequest::decode(data) {
        let _ = ClientId::parse(&request.client_id);
        if let Some(time) = request.expire_time {
            time_round_trip("expire_time", time);
        }
    }
    if let Ok(request) = pb::UnbanClientRequest::decode(data) {
        let _ = ClientId::parse(&request.client_id);
    }
    if let Ok(request) = pb::ListAuditEventsRequest::decode(data) {
        let scope = match (request.article_id.is_empty(), request.comment_id.is_empty()) {
            (true, true) => Some("audit:*".to_owned()),
            (false, true) => ArticleId::parse(&request.article_id)
                .ok()
                .map(|article| format!("audit:a:{article}")),
            (true, false) => CommentId::parse("comment_id", &request.comment_id)
                .ok()
                .map(|id| format!("audit:c:{id}")),
            (false, false) => None,
        };
        if let Some(scope) = scope {
            page(&scope, request.page_size, &request.page_token);
        }
    }
}

/// A listing's page size and token, as the use cases read them.
fn page(scope: &str, page_size: i32, token: &str) {
    if let Ok(size) = parse_page_size(page_size) {
        assert!((1..=paging::MAX_PAGE_SIZE).contains(&paging::page_size(size)));
    }
    let _ = paging::decode(token, scope, u64::MAX);
}

/// An accepted timestamp converts back to itself.
fn time_round_trip(field: &'static str, time: prost_types::Timestamp) {
    if let Ok(parsed) = from_timestamp(field, time) {
        assert_eq!(timestamp(parsed), time, "{field} does not round-trip");
    }
}

/// The pipeline as `Application::build` makes it: default policies, the
/// embedded models, and a few moderator terms (one allowed, so the masking
/// of allowed spans runs too).
fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let term = |raw: &str, effect| Term {
            text: Term::normalise(raw).expect("a valid term"),
            effect,
            added_by: "fuzz".to_owned(),
            added_at: std::time::UNIX_EPOCH,
        };
        let terms = [
            term("city budget", TermEffect::Hold),
            term("buy now", TermEffect::Reject),
            term("hell", TermEffect::Allow),
        ];
        Pipeline::new(
            ProfanityPolicy::default(),
            SpamPolicy::default(),
            ToxicityPolicy::default(),
            std::sync::Arc::new(TermList::new(&terms)),
            Models::embedded().expect("the embedded models load"),
        )
    })
}

/// Target `screening`: author name and text (split at the first NUL byte;
/// no NUL means no author), parsed as the API parses them, then screened.
pub fn screening(data: &[u8]) {
    let (name, text) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    let name = String::from_utf8_lossy(name);
    let text = String::from_utf8_lossy(text);
    let author = if name.trim().is_empty() {
        None
    } else {
        match AuthorName::parse(&name) {
            Ok(author) => Some(author),
            Err(_) => return,
        }
    };
    let Ok(text) = CommentText::parse(&text, CommentText::DEFAULT_MAX_CHARS) else {
        return;
    };
    let verdict = pipeline().screen(author.as_ref(), &text);
    assert!(
        verdict.decision == crate::domain::Decision::Approved || !verdict.reasons.is_empty(),
        "a verdict other than approved names its reasons: {verdict:?}"
    );
}

/// Scopes of every kind of listing.
const SCOPES: [&str; 5] = [
    "comments:news/2026/city-budget",
    "held:*",
    "held:news/2026/city-budget",
    "audit:*",
    "audit:c:0000000000000001",
];

/// Target `page_tokens`: `data` as a token of each kind of listing, which
/// is accepted only as exactly what `paging::encode` writes, with a position
/// no later than the log's last; and `data` as a position (8 bytes,
/// big-endian) and an article id, whose token must decode to that position
/// in its own scope only.
pub fn page_tokens(data: &[u8]) {
    let token = String::from_utf8_lossy(data);
    for scope in SCOPES {
        for last in [u64::MAX, 1_000] {
            if let Ok(Some(position)) = paging::decode(&token, scope, last) {
                assert!(
                    position <= last,
                    "{position} is after the last position {last}"
                );
                assert_eq!(
                    paging::encode(scope, position),
                    token,
                    "a token that is not what encode writes is accepted"
                );
            }
        }
    }
    let position = u64_at_end(&data[..data.len().min(8)]);
    let rest = String::from_utf8_lossy(&data[data.len().min(8)..]);
    if let Ok(article) = ArticleId::parse(&rest) {
        for scope in [
            format!("comments:{article}"),
            format!("held:{article}"),
            format!("audit:a:{article}"),
        ] {
            let token = paging::encode(&scope, position);
            assert_eq!(
                paging::decode(&token, &scope, position).ok(),
                Some(Some(position)),
                "the token of {position} in {scope:?} does not round-trip"
            );
            assert!(paging::decode(&token, &format!("{scope}/other"), u64::MAX).is_err());
            if let Some(before) = position.checked_sub(1) {
                assert!(paging::decode(&token, &scope, before).is_err());
            }
        }
    }
}

/// Target `store_records`: the first byte chooses what the rest is:
/// - 0: a log event ([`event::decode`]); a readable one re-encodes to
///   the same event, and its audit entry and comment can be derived;
/// - 1: a log index entry, `key NUL value` (dedup records and positions;
///   the views are no longer on disk, so no view entry is read);
/// - 2: a format-1 data dir, as records (`u8` key length, key, `u16` LE
///   value length, value), migrated by `store::migrate::from_v1`.
pub fn store_records(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    match kind {
        0 => {
            let _ = u64_at_end(rest);
            if let Ok(event) = event::decode::<Event>(rest) {
                let encoded = event::encode(&event);
                let again: Event = event::decode(&encoded).expect("a decoded event re-encodes");
                assert_eq!(again, event);
                let _ = event.audit(u64_at_end(rest));
                if let Event::Submitted(submitted) = &event {
                    let _ = submitted.comment(u64_at_end(rest));
                }
            }
        }
        1 => {
            let (key, value) = match rest.iter().position(|&b| b == 0) {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (&[][..], rest),
            };
            let _ = u64_at_end(key);
            let _ = event::decode::<(u64, u64)>(value);
            let _ = u64_at_end(value);
        }
        2 => v1_records(rest),
        _ => {}
    }
}

/// Migrates the format-1 records in `data` from a scratch sled tree (one
/// temporary database for the whole process).
fn v1_records(mut data: &[u8]) {
    static TREE: OnceLock<Mutex<sled::Tree>> = OnceLock::new();
    let tree = TREE.get_or_init(|| {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .expect("a temporary sled database");
        Mutex::new(db.open_tree("comments.v1").expect("a sled tree"))
    });
    let tree = tree.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tree.clear().expect("clearing the scratch tree");
    let mut batch = sled::Batch::default();
    while let Some((&key_len, rest)) = data.split_first() {
        let key_len = usize::from(key_len).min(rest.len());
        let (key, rest) = rest.split_at(key_len);
        let (value_len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
            _ => (rest.len(), &[][..]),
        };
        let (value, rest) = rest.split_at(value_len.min(rest.len()));
        batch.insert(key, value);
        data = rest;
    }
    tree.apply_batch(batch).expect("writing the scratch tree");
    let _ = migrate::from_v1(&tree);
}

/// A fuzz target's code.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, for the regression test.
pub const TARGETS: [(&str, Target); 4] = [
    ("decode_requests", decode_requests),
    ("screening", screening),
    ("page_tokens", page_tokens),
    ("store_records", store_records),
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::TARGETS;

    /// Every file in `fuzz/regressions/<target>/` (crashes the fuzzers
    /// found, and a few valid inputs) goes through its target's code
    /// without a panic.
    #[test]
    fn fuzz_regression_inputs_do_not_panic() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        for (target, run) in TARGETS {
            let dir = root.join(target);
            let mut inputs = 0;
            for entry in
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            {
                let path = entry.expect("a directory entry").path();
                let data = std::fs::read(&path).expect("a readable input");
                if std::panic::catch_unwind(|| run(&data)).is_err() {
                    panic!("{target} panics on {}", path.display());
                }
                inputs += 1;
            }
            assert!(inputs > 0, "{} holds no input", dir.display());
        }
    }
}
