//! Domain types: validated inputs, comments and verdicts.
//!
//! Everything that crosses the gRPC edge is parsed into these types first
//! (`ArticleId::parse`, `CommentText::parse`, ...), so the moderation
//! pipeline, the store and the hub only ever see values that are already
//! valid. None of them know about protobuf.

use std::{borrow::Cow, fmt, time::SystemTime};

use serde::{Deserialize, Serialize};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
use unicode_security::MixedScript;

/// One refused field of a request: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: &'static str,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: &'static str, description: impl Into<String>) -> Self {
        Self {
            field,
            description: description.into(),
        }
    }
}

/// Collects violations while a request is parsed, so the caller learns about
/// every bad field at once rather than one per round trip.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Records the error of `result` (if any) and returns its value.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(violation) => {
                self.0.push(violation);
                None
            }
        }
    }

    pub fn into_result(self) -> Result<(), Vec<FieldViolation>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// Refuses control characters other than newline and tab.
fn check_no_control(field: &'static str, value: &str) -> Result<(), FieldViolation> {
    match value
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        Some(c) => Err(FieldViolation::new(
            field,
            format!("must not contain control character U+{:04X}", c as u32),
        )),
        None => Ok(()),
    }
}

/// Code points that render as nothing: Unicode's Default_Ignorable_Code_Point
/// set (zero-width spaces and joiners, bidi controls, variation selectors,
/// the BOM, Hangul fillers, tags) plus the braille blank.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x2800
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Characters that change the direction of the text around them (and can
/// make a name read as something else).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` in Unicode NFC, borrowed when it already is (always for ASCII,
/// and for almost all comments: composing is the costly part).
pub fn nfc(text: &str) -> Cow<'_, str> {
    if is_nfc_quick(text.chars()) == IsNormalized::Yes {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.nfc().collect())
    }
}

/// Trims, unifies line endings (including U+2028 and U+2029), normalises to
/// NFC and checks the length in characters (Unicode scalar values). A value
/// with nothing visible (only spaces, zero-width or filler characters) is
/// refused as empty-looking.
fn parse_text_field(
    field: &'static str,
    raw: &str,
    max_chars: usize,
) -> Result<String, FieldViolation> {
    let unified = raw
        .replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}'], "\n");
    let text = nfc(unified.trim()).into_owned();
    check_no_control(field, &text)?;
    let chars = text.chars().count();
    if chars == 0 {
        return Err(FieldViolation::new(field, "must not be empty"));
    }
    if text
        .chars()
        .all(|c| c.is_whitespace() || is_default_ignorable(c))
    {
        return Err(FieldViolation::new(
            field,
            "must contain visible characters (it has only blank or invisible ones)",
        ));
    }
    if chars > max_chars {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {max_chars} characters, got {chars}"),
        ));
    }
    Ok(text)
}

/// The article a comment belongs to: 1–128 characters of `[A-Za-z0-9._:/-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ArticleId(String);

impl ArticleId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        const FIELD: &str = "article_id";
        if raw.is_empty() {
            return Err(FieldViolation::new(FIELD, "must not be empty"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(FieldViolation::new(
                FIELD,
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        if let Some(c) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-')))
        {
            return Err(FieldViolation::new(
                FIELD,
                format!("may only contain A-Z a-z 0-9 . _ : / - (found {c:?})"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArticleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reader's display name: 1–64 characters after trimming, NFC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthorName(String);

impl AuthorName {
    pub const MAX_CHARS: usize = 64;

    /// The name of a comment whose content was erased (removed).
    pub fn erased() -> Self {
        Self(String::new())
    }

    /// Besides the text rules: one line, no bidi controls, no invisible
    /// characters (zero-width joiners and variation selectors, which some
    /// scripts and emoji need, excepted) and letters of one script, so that
    /// a name cannot pass for another one ("Аdmin" with a Cyrillic А).
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        const FIELD: &str = "author_name";
        let name = parse_text_field(FIELD, raw, Self::MAX_CHARS)?;
        if name.contains('\n') {
            return Err(FieldViolation::new(FIELD, "must be a single line"));
        }
        if let Some(c) = name.chars().find(|c| is_bidi_control(*c)) {
            return Err(FieldViolation::new(
                FIELD,
                format!("must not contain bidirectional control U+{:04X}", c as u32),
            ));
        }
        if let Some(c) = name.chars().find(|c| {
            is_default_ignorable(*c)
                && !matches!(c, '\u{200C}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}')
        }) {
            return Err(FieldViolation::new(
                FIELD,
                format!("must not contain invisible character U+{:04X}", c as u32),
            ));
        }
        if !name.as_str().is_single_script() {
            return Err(FieldViolation::new(
                FIELD,
                "must not mix letters of different scripts (such as Latin and Cyrillic look-alikes)",
            ));
        }
        Ok(Self(name))
    }

    /// The name as compared for look-alikes: Unicode's confusables
    /// skeleton, lower-cased, letters and digits only.
    pub fn skeleton(name: &str) -> String {
        unicode_security::skeleton(&name.to_lowercase())
            .flat_map(char::to_lowercase)
            .filter(|c| c.is_alphanumeric())
            .collect()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Author names kept for the site's staff: a reader's name that is one of
/// them or looks like one (same confusables skeleton: "Adm1n" is not one,
/// "ΑDMIN" with a Greek Alpha is) is refused.
#[derive(Debug, Clone, Default)]
pub struct ReservedNames(std::collections::HashSet<String>);

impl ReservedNames {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self(
            names
                .into_iter()
                .map(AuthorName::skeleton)
                .filter(|skeleton| !skeleton.is_empty())
                .collect(),
        )
    }

    pub fn check(&self, name: &AuthorName) -> Result<(), FieldViolation> {
        if self.0.contains(&AuthorName::skeleton(name.as_str())) {
            return Err(FieldViolation::new(
                "author_name",
                "is reserved for the site's staff",
            ));
        }
        Ok(())
    }
}

/// A comment's text: 1–`max_chars` characters after trimming, NFC, line
/// endings unified to `\n`, no control characters but newline and tab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommentText(String);

impl CommentText {
    pub const DEFAULT_MAX_CHARS: usize = 5_000;

    /// The text of a comment whose content was erased (removed).
    pub fn erased() -> Self {
        Self(String::new())
    }

    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, FieldViolation> {
        parse_text_field("text", raw, max_chars).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The opaque id of an end user or device, supplied by the calling site.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        parse_opaque("client_id", raw, Self::MAX_LEN)?
            .map(Self)
            .ok_or_else(|| FieldViolation::new("client_id", "must not be empty"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A caller-chosen key that makes a submission safe to retry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 128;

    /// Empty means "no key".
    pub fn parse_optional(raw: &str) -> Result<Option<Self>, FieldViolation> {
        Ok(parse_opaque("idempotency_key", raw, Self::MAX_LEN)?.map(Self))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Opaque ids are used as-is (no trimming), so they must be printable.
fn parse_opaque(
    field: &'static str,
    raw: &str,
    max_len: usize,
) -> Result<Option<String>, FieldViolation> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() > max_len {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {max_len} bytes"),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(FieldViolation::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(Some(raw.to_owned()))
}

/// A comment's id: its position in the server's log of stored comments.
/// Shown as 16 lowercase hex digits so that string order is numeric order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommentId(u64);

impl CommentId {
    pub fn new(position: u64) -> Self {
        Self(position)
    }

    pub fn position(self) -> u64 {
        self.0
    }

    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldViolation> {
        let invalid = || FieldViolation::new(field, "must be a comment id: 16 hex digits");
        if raw.len() != 16 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        u64::from_str_radix(raw, 16)
            .map(Self)
            .map_err(|_| invalid())
    }

    /// Empty means "none".
    pub fn parse_optional(field: &'static str, raw: &str) -> Result<Option<Self>, FieldViolation> {
        if raw.is_empty() {
            Ok(None)
        } else {
            Self::parse(field, raw).map(Some)
        }
    }
}

impl fmt::Display for CommentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Where a stored comment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommentState {
    Published,
    Held,
}

/// A stored comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub id: CommentId,
    pub article_id: ArticleId,
    pub author_name: AuthorName,
    pub text: CommentText,
    pub parent_id: Option<CommentId>,
    /// Who submitted it: shown to moderators, never to readers.
    pub client_id: ClientId,
    pub created_at: SystemTime,
    pub state: CommentState,
}

/// Something that happened to an article's public comments, at a position
/// of the server's log. Subscribers receive these in position order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArticleEvent {
    /// A comment was approved and is now public; its id is its position.
    Published(Comment),
    /// A published comment was removed by a moderator.
    Removed {
        article_id: ArticleId,
        comment_id: CommentId,
        position: u64,
    },
}

impl ArticleEvent {
    pub fn position(&self) -> u64 {
        match self {
            Self::Published(comment) => comment.id.position(),
            Self::Removed { position, .. } => *position,
        }
    }

    pub fn article_id(&self) -> &ArticleId {
        match self {
            Self::Published(comment) => &comment.article_id,
            Self::Removed { article_id, .. } => article_id,
        }
    }
}

/// How an article takes comments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModerationMode {
    /// Approved comments publish at once.
    #[default]
    Post,
    /// Every comment waits for a moderator.
    Pre,
}

/// Per-article settings, changed by moderators.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleSettings {
    pub comments_closed: bool,
    pub moderation_mode: ModerationMode,
    /// Comments close by themselves at this time.
    pub auto_close_at: Option<SystemTime>,
    /// Trust for newcomers: hold the comments of a client_id until
    /// moderators have approved this many of its comments (0: off).
    pub newcomer_approvals_required: u32,
}

impl ArticleSettings {
    pub fn is_open_at(&self, now: SystemTime) -> bool {
        !self.comments_closed && self.auto_close_at.is_none_or(|at| now < at)
    }
}

/// What a moderator does to a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModerationAction {
    Approve,
    Reject,
    Remove,
}

/// What a blocked term does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TermEffect {
    /// A blocked term that holds the comment.
    Hold,
    /// A blocked term that rejects the comment.
    Reject,
    /// An allowed term: never flagged by the profanity filter.
    Allow,
}

/// A moderator-maintained term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    /// Lower-cased, NFC, single spaces.
    pub text: String,
    pub effect: TermEffect,
    pub added_by: String,
    pub added_at: SystemTime,
}

impl Term {
    pub const MAX_CHARS: usize = 100;

    /// Normalises a term for matching: NFC, lower case, single spaces.
    pub fn normalise(raw: &str) -> Result<String, FieldViolation> {
        let text: String = raw.nfc().collect::<String>().to_lowercase();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return Err(FieldViolation::new("terms", "a term must not be empty"));
        }
        if text.chars().count() > Self::MAX_CHARS || text.chars().any(char::is_control) {
            return Err(FieldViolation::new(
                "terms",
                format!(
                    "a term must be at most {} printable characters",
                    Self::MAX_CHARS
                ),
            ));
        }
        Ok(text)
    }
}

/// A ban of one client_id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub client_id: ClientId,
    pub reason: String,
    pub expires_at: Option<SystemTime>,
    pub created_by: String,
    pub created_at: SystemTime,
}

impl Ban {
    pub fn is_active_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// Who did something: a moderator (by token name) or the filters.
pub const FILTER_ACTOR: &str = "filter";

/// What an audit event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAction {
    /// The filters decided a submission.
    Screened,
    Approved,
    Rejected,
    Removed,
    ArticleUpdated,
    TermsAdded,
    TermsRemoved,
    ClientBanned,
    ClientUnbanned,
}

/// One entry of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: u64,
    pub time: SystemTime,
    pub actor: String,
    pub action: AuditAction,
    pub article_id: Option<ArticleId>,
    pub comment_id: Option<CommentId>,
    pub client_id: Option<ClientId>,
    pub decision: Option<Decision>,
    pub reasons: Vec<Reason>,
    pub note: String,
}

/// A held comment with the verdict that held it (for moderators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldComment {
    pub comment: Comment,
    pub verdict: Verdict,
}

/// Which audit events to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditFilter {
    All,
    Article(ArticleId),
    Comment(CommentId),
}

/// A valid submission, before screening.
#[derive(Debug, Clone)]
pub struct Submission {
    pub article_id: ArticleId,
    pub author_name: AuthorName,
    pub text: CommentText,
    pub parent_id: Option<CommentId>,
    pub client_id: ClientId,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl Submission {
    /// A fingerprint of what was submitted, so that an idempotency key reused
    /// for a different comment is noticed. Stable across restarts (FNV-1a).
    pub fn fingerprint(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let parent = self.parent_id.map(|id| id.to_string()).unwrap_or_default();
        for part in [
            self.article_id.as_str(),
            self.author_name.as_str(),
            self.text.as_str(),
            parent.as_str(),
        ] {
            for byte in part.bytes().chain([0xff]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        hash
    }
}

/// What happens to a comment. Ordered from most to least permissive, so the
/// strictest of several decisions is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Decision {
    Approved,
    Held,
    Rejected,
}

/// Which filter produced a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Filter {
    Profanity,
    Spam,
    Duplicate,
    /// The moderators' blocked and allowed terms.
    Terms,
    /// A banned client_id.
    Ban,
    /// Article or site policy: pre-moderation, newcomers.
    Policy,
    /// Insults, attacks and threats without swear words (the toxicity model).
    Toxicity,
}

impl Filter {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Profanity => "profanity",
            Self::Spam => "spam",
            Self::Duplicate => "duplicate",
            Self::Terms => "terms",
            Self::Ban => "ban",
            Self::Policy => "policy",
            Self::Toxicity => "toxicity",
        }
    }
}

/// How severe a profanity finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    Mild,
    Moderate,
    Severe,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mild => "mild",
            Self::Moderate => "moderate",
            Self::Severe => "severe",
        }
    }
}

/// One finding of one filter, with what it alone would decide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub filter: Filter,
    pub code: String,
    pub message: String,
    pub category: Option<String>,
    pub severity: Option<Severity>,
    pub decision: Decision,
}

/// The outcome of screening: the strictest decision of all findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub decision: Decision,
    pub reasons: Vec<Reason>,
    pub censored_text: Option<String>,
}

impl Verdict {
    pub fn from_reasons(reasons: Vec<Reason>, censored_text: Option<String>) -> Self {
        let decision = reasons
            .iter()
            .map(|reason| reason.decision)
            .max()
            .unwrap_or(Decision::Approved);
        Self {
            decision,
            reasons,
            censored_text,
        }
    }

    /// Adds a finding, raising the decision if it is stricter.
    pub fn push(&mut self, reason: Reason) {
        self.decision = self.decision.max(reason.decision);
        self.reasons.push(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_article_id_with_allowed_punctuation_is_accepted() {
        assert!(ArticleId::parse("news/2026-11-27/city_hall:v2.1").is_ok());
    }

    #[test]
    fn an_article_id_with_a_space_or_nul_is_rejected() {
        assert!(ArticleId::parse("a b").is_err());
        assert!(ArticleId::parse("a\0b").is_err());
        assert!(ArticleId::parse("").is_err());
    }

    #[test]
    fn an_article_id_longer_than_128_is_rejected() {
        assert!(ArticleId::parse(&"a".repeat(128)).is_ok());
        assert!(ArticleId::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn text_is_trimmed_and_normalised_to_nfc() {
        let text = CommentText::parse("  Cafe\u{301}\r\nok  ", 100).unwrap();
        assert_eq!(text.as_str(), "Caf\u{e9}\nok");
    }

    #[test]
    fn nfc_borrows_normalised_text_and_composes_or_reorders_the_rest() {
        assert!(matches!(nfc("Caf\u{e9} ok"), Cow::Borrowed(_)));
        assert_eq!(nfc("Cafe\u{301}"), "Caf\u{e9}");
        // Combining marks out of canonical order (dot above before dot below).
        assert_eq!(nfc("q\u{307}\u{323}"), "q\u{323}\u{307}");
    }

    #[test]
    fn whitespace_only_text_is_empty() {
        let err = CommentText::parse(" \n\t ", 100).unwrap_err();
        assert_eq!(err.field, "text");
    }

    #[test]
    fn text_length_is_counted_in_characters_after_trimming() {
        assert!(CommentText::parse(&format!("  {}  ", "é".repeat(10)), 10).is_ok());
        assert!(CommentText::parse(&"é".repeat(11), 10).is_err());
    }

    #[test]
    fn control_characters_other_than_newline_and_tab_are_refused() {
        assert!(CommentText::parse("a\tb\nc", 100).is_ok());
        assert!(CommentText::parse("a\u{7}b", 100).is_err());
        assert!(CommentText::parse("a\u{1b}[31mb", 100).is_err());
    }

    #[test]
    fn an_author_name_must_be_one_line_of_at_most_64_characters() {
        assert!(AuthorName::parse(&"n".repeat(64)).is_ok());
        assert!(AuthorName::parse(&"n".repeat(65)).is_err());
        assert!(AuthorName::parse("two\nlines").is_err());
        assert_eq!(AuthorName::parse("  Ana ").unwrap().as_str(), "Ana");
    }

    #[test]
    fn invisible_only_names_and_texts_are_refused() {
        for blank in [
            "\u{200b}",
            "\u{3164}",
            "\u{feff}",
            "\u{2800}",
            " \u{200b}\u{2060} ",
            "\u{115f}\u{1160}",
        ] {
            let name = AuthorName::parse(blank).unwrap_err();
            assert_eq!(name.field, "author_name", "{blank:?}");
            let text = CommentText::parse(blank, 100).unwrap_err();
            assert_eq!(text.field, "text", "{blank:?}");
            assert!(
                text.description.contains("visible"),
                "{blank:?}: {}",
                text.description
            );
        }
        // Joiners inside real words and emoji sequences stay.
        assert!(CommentText::parse("family: 👩\u{200d}👧", 100).is_ok());
        assert!(AuthorName::parse("می\u{200c}خواهم").is_ok());
    }

    #[test]
    fn names_with_bidi_controls_separators_or_hidden_characters_are_refused() {
        for name in [
            "\u{202e}ninA",
            "Ana\u{2028}Admin",
            "Ana\u{2029}B",
            "A\u{200b}na",
            "A\u{2066}na",
            "Ana\u{3164}",
        ] {
            assert!(AuthorName::parse(name).is_err(), "{name:?}");
        }
        // A line separator in a text is a line break.
        assert_eq!(
            CommentText::parse("a\u{2028}b", 10).unwrap().as_str(),
            "a\nb"
        );
    }

    #[test]
    fn names_mixing_look_alike_scripts_are_refused_single_scripts_are_not() {
        assert!(AuthorName::parse("\u{410}dmin").is_err()); // Cyrillic А
        assert!(AuthorName::parse("Jürgen Müller-2").is_ok());
        assert!(AuthorName::parse("Андрей").is_ok());
        assert!(AuthorName::parse("山田 たろう").is_ok());
        assert!(AuthorName::parse("Zoë 🙂").is_ok());
    }

    #[test]
    fn reserved_names_and_their_look_alikes_are_refused() {
        let reserved = ReservedNames::new(["Admin", "alice"]);
        for name in ["admin", "ADMIN", "Ad min", "A1ice", "ALICE", "a.l.i.c.e"] {
            let name = AuthorName::parse(name).unwrap();
            assert!(reserved.check(&name).is_err(), "{name:?}");
        }
        for name in ["Adam", "Alicia", "administrator of sorts"] {
            let name = AuthorName::parse(name).unwrap();
            assert!(reserved.check(&name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn comment_ids_round_trip_and_sort_as_strings() {
        let a = CommentId::new(9);
        let b = CommentId::new(16);
        assert_eq!(a.to_string(), "0000000000000009");
        assert!(a.to_string() < b.to_string());
        assert_eq!(CommentId::parse("id", &b.to_string()).unwrap(), b);
        assert!(CommentId::parse("id", "xyz").is_err());
        assert!(CommentId::parse("id", "+000000000000001").is_err());
    }

    #[test]
    fn the_strictest_decision_wins() {
        let reason = |decision| Reason {
            filter: Filter::Spam,
            code: "x".into(),
            message: "x".into(),
            category: None,
            severity: None,
            decision,
        };
        let verdict = Verdict::from_reasons(
            vec![
                reason(Decision::Held),
                reason(Decision::Rejected),
                reason(Decision::Approved),
            ],
            None,
        );
        assert_eq!(verdict.decision, Decision::Rejected);
        assert_eq!(
            Verdict::from_reasons(vec![], None).decision,
            Decision::Approved
        );
    }

    #[test]
    fn the_fingerprint_changes_with_the_text() {
        let submission = |text: &str| Submission {
            article_id: ArticleId::parse("a").unwrap(),
            author_name: AuthorName::parse("n").unwrap(),
            text: CommentText::parse(text, 100).unwrap(),
            parent_id: None,
            client_id: ClientId::parse("c").unwrap(),
            idempotency_key: None,
        };
        assert_eq!(submission("x").fingerprint(), submission("x").fingerprint());
        assert_ne!(submission("x").fingerprint(), submission("y").fingerprint());
    }
}
