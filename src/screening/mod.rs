//! The screening pipeline: ordered content filters, each adding findings.
//!
//! The text (and author name) is analysed by rustrict once; each filter
//! reads that shared analysis, and the learned [`classifier`] models where
//! they are loaded, and adds [`Reason`]s. The strictest decision of
//! all findings wins, and every decision other than approval carries at
//! least one reason, so a moderator or an author can always see why.
//!
//! Stateful checks that depend on who submits (rate limit, duplicates) live
//! beside the pipeline in [`rate_limit`] and [`duplicate`]: `CheckComment`
//! runs the pipeline alone, without touching them.

pub mod classifier;
pub mod duplicate;
pub mod profanity;
pub mod rate_limit;
pub mod spam;
pub mod terms;

use std::sync::Arc;

use rustrict::{Censor, Type};

use crate::domain::{AuthorName, CommentText, Verdict};
use classifier::{Model, OFFENSIVE_MODEL, SPAM_MODEL};

pub use profanity::ProfanityPolicy;
pub use spam::SpamPolicy;
pub use terms::TermList;

/// The learned models the filters use; a filter without its model falls
/// back to its heuristics alone.
#[derive(Debug, Clone, Default)]
pub struct Models {
    pub spam: Option<Arc<Model>>,
    pub offensive: Option<Arc<Model>>,
}

impl Models {
    /// The models embedded in the binary.
    pub fn embedded() -> Result<Self, String> {
        Ok(Self {
            spam: Some(Arc::new(
                Model::from_bytes(SPAM_MODEL).map_err(|e| format!("embedded spam model: {e}"))?,
            )),
            offensive: Some(Arc::new(
                Model::from_bytes(OFFENSIVE_MODEL)
                    .map_err(|e| format!("embedded offensive model: {e}"))?,
            )),
        })
    }
}

/// What every filter sees: the input and rustrict's analysis of it.
pub struct ScreenInput<'a> {
    pub author_name: &'a str,
    pub text: &'a str,
    /// The text with plain numbers and allowed terms blanked: what the
    /// profanity checks read.
    pub masked_text: &'a str,
    pub text_type: Type,
    pub author_type: Type,
}

/// One step of the pipeline.
pub trait ContentFilter: Send + Sync {
    /// Adds this filter's findings about `input` to `findings`.
    fn inspect(&self, input: &ScreenInput<'_>, findings: &mut Vec<crate::domain::Reason>);
}

/// The ordered content filters, after the moderators' term lists.
pub struct Pipeline {
    terms: Arc<TermList>,
    filters: Vec<Box<dyn ContentFilter>>,
}

impl Pipeline {
    pub fn new(
        profanity: ProfanityPolicy,
        spam: SpamPolicy,
        terms: Arc<TermList>,
        models: Models,
    ) -> Self {
        Self {
            terms,
            filters: vec![
                Box::new(profanity::ProfanityFilter::new(profanity, models.offensive)),
                Box::new(spam::SpamFilter::new(spam, models.spam)),
            ],
        }
    }

    /// Screens a comment's content.
    pub fn screen(&self, author_name: Option<&AuthorName>, text: &CommentText) -> Verdict {
        let term_matches = self.terms.current().find(text.as_str());
        let masked = mask_spans(
            &mask_non_language(text.as_str()),
            &term_matches.allowed_spans,
        );
        let (censored, text_type) = Censor::from_str(&masked).censor_and_analyze();
        let censored = unmask(text.as_str(), &masked, censored);
        let author_name = author_name.map_or("", AuthorName::as_str);
        let author_type = if author_name.is_empty() {
            Type::NONE
        } else {
            Censor::from_str(&mask_non_language(author_name)).analyze()
        };
        let input = ScreenInput {
            author_name,
            text: text.as_str(),
            masked_text: &masked,
            text_type,
            author_type,
        };
        let mut findings = term_matches.reasons;
        for filter in &self.filters {
            filter.inspect(&input, &mut findings);
        }
        let censored_text = (censored != text.as_str()).then_some(censored);
        Verdict::from_reasons(findings, censored_text)
    }
}

/// rustrict's analysis of a text as the pipeline (and model training) sees
/// it: with plain numbers blanked.
pub fn screening_type(text: &str) -> Type {
    Censor::from_str(&mask_non_language(text)).analyze()
}

/// Blanks what is not language before rustrict reads the text:
/// - tokens that are plain numbers ("3003", "2,990", "3.5%", "2026-11-27"):
///   rustrict reads digits as letters to catch l33t speak, which makes vote
///   counts and prices look like words ("3008" as "boob"); tokens that mix
///   letters and digits ("f4ck", "n1gger") are left alone, so evasions are
///   still caught;
/// - links and @mentions: random letters in URLs and user names are not
///   anybody's language (measured: reading them cost clean comments).
///
/// - HTML character references (`&#8220;`, `&amp;`), as pasted or scraped
///   text carries them.
///
/// Each blanked character becomes one space, so positions are kept.
fn mask_non_language(text: &str) -> String {
    let text = &blank_html_entities(text);
    let mut masked = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let token_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (token, tail) = rest.split_at(token_end);
        if is_plain_number(token) {
            masked.extend(
                token
                    .chars()
                    .map(|c| if c.is_ascii_digit() { ' ' } else { c }),
            );
        } else if is_link_or_mention(token) {
            masked.extend(token.chars().map(|_| ' '));
        } else {
            masked.push_str(token);
        }
        let space_end = tail
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(tail.len());
        masked.push_str(&tail[..space_end]);
        rest = &tail[space_end..];
    }
    masked
}

/// Blanks the given char ranges (allowed terms) for the profanity filter.
fn mask_spans(text: &str, spans: &[(usize, usize)]) -> String {
    if spans.is_empty() {
        return text.to_owned();
    }
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if spans.iter().any(|&(start, end)| (start..end).contains(&i)) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Blanks `&name;` and `&#123;` references, keeping positions.
fn blank_html_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '&' {
            let end = (i + 1..chars.len().min(i + 12)).find(|&j| chars[j] == ';');
            if let Some(end) = end
                && end > i + 1
                && chars[i + 1..end]
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == '#')
            {
                out.extend(std::iter::repeat_n(' ', end + 1 - i));
                i = end + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// A URL, or an @mention (possibly after punctuation or an HTML entity,
/// but not an e-mail address, which has letters before the `@`).
fn is_link_or_mention(token: &str) -> bool {
    let lower = token.to_ascii_lowercase();
    if lower.contains("://") || lower.starts_with("www.") || lower.contains("http") {
        return true;
    }
    match token.find('@') {
        Some(at) => {
            !token[..at].chars().any(char::is_alphabetic)
                && token[at + 1..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
        }
        None => false,
    }
}

fn is_plain_number(token: &str) -> bool {
    token.chars().any(|c| c.is_ascii_digit())
        && token
            .chars()
            .all(|c| c.is_ascii_digit() || ",.:;%/+-$€£()#!?'\"".contains(c))
}

/// Puts the blanked characters back into rustrict's censored text (which keeps
/// one output character per input character); if the lengths disagree, the
/// censored text of the masked input is returned as it is.
fn unmask(original: &str, masked: &str, censored: String) -> String {
    if original == masked || censored.chars().count() != original.chars().count() {
        return censored;
    }
    original
        .chars()
        .zip(masked.chars())
        .zip(censored.chars())
        .map(|((original, masked), censored)| {
            if original != masked {
                original
            } else {
                censored
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Decision, Filter};

    fn screen(text: &str) -> Verdict {
        let pipeline = Pipeline::new(
            ProfanityPolicy::default(),
            SpamPolicy::default(),
            Arc::default(),
            Models::embedded().unwrap(),
        );
        pipeline.screen(
            Some(&AuthorName::parse("Reader").unwrap()),
            &CommentText::parse(text, 5000).unwrap(),
        )
    }

    #[test]
    fn a_clean_comment_is_approved_without_reasons() {
        let verdict = screen("Thanks for the thorough reporting on the council budget.");
        assert_eq!(verdict.decision, Decision::Approved);
        assert!(verdict.reasons.is_empty());
        assert_eq!(verdict.censored_text, None);
    }

    #[test]
    fn plain_numbers_are_not_read_as_words() {
        for text in [
            "The vote was 3003 to 2990.",
            "I paid 3008 dollars",
            "Flight 8008 was late",
            "Comment number 493",
        ] {
            let verdict = screen(text);
            assert_eq!(verdict.decision, Decision::Approved, "{text}: {verdict:?}");
            assert_eq!(verdict.censored_text, None, "{text}");
        }
    }

    #[test]
    fn links_and_mentions_are_not_read_as_words() {
        let text = "hi @Chink_19 see http://t.co/xXx";
        let masked = mask_non_language(text);
        assert_eq!(masked.chars().count(), text.chars().count());
        assert!(masked.starts_with("hi ") && masked.contains(" see "));
        assert!(!masked.contains("Chink") && !masked.contains("xXx"));
        assert_eq!(mask_non_language("mail bob@shit.com"), "mail bob@shit.com");
        assert_eq!(
            mask_non_language("&#8220;hi&amp; you"),
            "       hi      you"
        );
    }

    #[test]
    fn numbers_inside_words_are_still_read_as_letters() {
        assert_ne!(screen("f4ck this").decision, Decision::Approved);
        let verdict = screen("In 2024 you said sh1t");
        assert!(
            verdict
                .censored_text
                .unwrap()
                .starts_with("In 2024 you said")
        );
    }

    #[test]
    fn every_non_approval_has_a_reason() {
        for text in ["fuck you", "buy now http://a.com http://b.com http://c.com"] {
            let verdict = screen(text);
            assert_ne!(verdict.decision, Decision::Approved, "{text}");
            assert!(
                verdict
                    .reasons
                    .iter()
                    .any(|r| r.decision == verdict.decision)
            );
        }
    }

    #[test]
    fn the_strictest_filter_wins() {
        let verdict = screen("fuck you http://a.com http://b.com http://c.com");
        assert_eq!(verdict.decision, Decision::Rejected);
        assert!(verdict.reasons.iter().any(|r| r.filter == Filter::Spam));
        assert!(
            verdict
                .reasons
                .iter()
                .any(|r| r.filter == Filter::Profanity)
        );
    }
}
