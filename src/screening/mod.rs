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
pub mod normalize;
pub mod profanity;
pub mod rate_limit;
pub mod spam;
pub mod terms;
pub mod toxicity;
#[cfg(feature = "train")]
pub mod train;

use std::sync::Arc;

use rustrict::{Censor, Type};

use crate::domain::{AuthorName, CommentText, Verdict};
use classifier::{Model, ModelError, OFFENSIVE_MODEL, SPAM_MODEL, TOXICITY_MODEL};
pub use normalize::Normalized;

pub use profanity::ProfanityPolicy;
pub use spam::SpamPolicy;
pub use terms::TermList;
pub use toxicity::ToxicityPolicy;

/// The learned models the filters use; a filter without its model falls
/// back to its heuristics alone.
#[derive(Debug, Clone, Default)]
pub struct Models {
    pub spam: Option<Arc<Model>>,
    pub offensive: Option<Arc<Model>>,
    pub toxicity: Option<Arc<Model>>,
}

impl Models {
    /// The models embedded in the binary.
    pub fn embedded() -> Result<Self, ModelError> {
        let load = |name: &'static str, bytes: &[u8]| {
            Model::from_bytes(bytes)
                .map(Arc::new)
                .map_err(|error| error.context(name))
        };
        Ok(Self {
            spam: Some(load("embedded spam model", SPAM_MODEL)?),
            offensive: Some(load("embedded offensive model", OFFENSIVE_MODEL)?),
            toxicity: Some(load("embedded toxicity model", TOXICITY_MODEL)?),
        })
    }
}

/// What every filter sees: the normalised input and rustrict's analysis.
pub struct ScreenInput<'a> {
    pub author_name: &'a str,
    /// The comment after [`Normalized::new`]: what every filter reads.
    pub text: &'a Normalized,
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
        toxicity: ToxicityPolicy,
        terms: Arc<TermList>,
        models: Models,
    ) -> Self {
        Self {
            terms,
            filters: vec![
                Box::new(profanity::ProfanityFilter::new(profanity, models.offensive)),
                Box::new(toxicity::ToxicityFilter::new(toxicity, models.toxicity)),
                Box::new(spam::SpamFilter::new(spam, models.spam)),
            ],
        }
    }

    /// Screens a comment's content.
    pub fn screen(&self, author_name: Option<&AuthorName>, text: &CommentText) -> Verdict {
        let normalized = Normalized::new(text.as_str());
        let term_matches = self.terms.current().find(normalized.text());
        let masked = mask_spans(&normalized.language_only(), &term_matches.allowed_spans);
        let (censored, text_type) = censor_and_analyze(&masked);
        let censored = unmask(normalized.text(), &masked, censored);
        let author_name = author_name.map_or("", AuthorName::as_str);
        let author_type = if author_name.is_empty() {
            Type::NONE
        } else {
            screening_type(&Normalized::new(author_name))
        };
        let input = ScreenInput {
            author_name,
            text: &normalized,
            text_type,
            author_type,
        };
        let mut findings = term_matches.reasons;
        for filter in &self.filters {
            filter.inspect(&input, &mut findings);
        }
        let censored_text = (censored != normalized.text()).then_some(censored);
        Verdict::from_reasons(findings, censored_text)
    }
}

/// rustrict's analysis of a normalised text as the pipeline (and model
/// training) sees it: links, mentions and plain numbers blanked.
pub fn screening_type(text: &Normalized) -> Type {
    censor_and_analyze(&text.language_only()).1
}

/// rustrict reads at most this many characters at once.
const RUSTRICT_WINDOW: usize = 320;
/// Characters each window shares with the next, so that a word spread over
/// a window boundary ("f u c k") is still seen whole.
const RUSTRICT_OVERLAP: usize = 48;

/// rustrict's censored text and analysis, window by window.
///
/// rustrict's evasion handling (spaced letters, repeats) makes its cost grow
/// faster than the text on some inputs: 5,000 characters of `"x x x …"` took
/// 40–90 ms in one piece. Spaced-out text is joined first
/// ([`collapse_spaced_letters`]); windows of [`RUSTRICT_WINDOW`] characters, split
/// at whitespace where possible, keep the cost linear in the length; each
/// window is analysed with [`RUSTRICT_OVERLAP`] characters of the next, and
/// the analyses are combined.
fn censor_and_analyze(text: &str) -> (String, Type) {
    match collapse_spaced_letters(text) {
        // Analysed with the letters joined ("f u c k" → "fuck"), which is
        // what rustrict's spacing detection would find at a far higher cost;
        // the text is offered uncensored.
        Some(collapsed) => (text.to_owned(), censor_and_analyze_windows(&collapsed).1),
        None => censor_and_analyze_windows(text),
    }
}

/// [`censor_and_analyze`] of a text that is not spaced out, window by window.
fn censor_and_analyze_windows(text: &str) -> (String, Type) {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= RUSTRICT_WINDOW {
        return Censor::from_str(text).censor_and_analyze();
    }
    let mut censored = String::with_capacity(text.len());
    let mut analysis = Type::NONE;
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + RUSTRICT_WINDOW).min(chars.len());
        if end < chars.len()
            && let Some(space) = chars[start + RUSTRICT_WINDOW / 2..end]
                .iter()
                .rposition(|c| c.is_whitespace())
        {
            end = start + RUSTRICT_WINDOW / 2 + space + 1;
        }
        let window: String = chars[start..end].iter().collect();
        let (window_censored, window_type) = Censor::from_str(&window).censor_and_analyze();
        if window_censored.chars().count() == end - start {
            censored.push_str(&window_censored);
        } else {
            censored.push_str(&window);
        }
        analysis |= window_type;
        if end < chars.len() {
            let seam_end = (end + RUSTRICT_OVERLAP).min(chars.len());
            let seam_start = end.saturating_sub(RUSTRICT_OVERLAP).max(start);
            let seam: String = chars[seam_start..seam_end].iter().collect();
            analysis |= Censor::from_str(&seam).analyze();
        }
        start = end;
    }
    (censored, analysis)
}

/// Joined single letters from which a text counts as spaced out.
const SPACED_LETTERS: usize = 64;

/// The text with runs of single-letter words joined ("x x x" → "xxx"), when
/// at least [`SPACED_LETTERS`] letters are joined: rustrict's cost on such
/// text is several times its cost on prose. Single letters between longer
/// words ("a", "I" in prose) are left as they are.
fn collapse_spaced_letters(text: &str) -> Option<String> {
    let single = |word: &str| {
        let mut chars = word.chars();
        chars.next().is_some() && chars.next().is_none()
    };
    let mut out = String::with_capacity(text.len());
    let mut previous_single = false;
    let mut joined = 0;
    for word in text.split_whitespace() {
        let is_single = single(word);
        let joins_previous = is_single && previous_single;
        if joins_previous {
            joined += 1;
        } else if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        previous_single = is_single;
    }
    (joined >= SPACED_LETTERS).then_some(out)
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
            ToxicityPolicy::default(),
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
        let verdict = screen("hi @Chink_19 see http://t.co/xXx");
        assert!(
            verdict
                .reasons
                .iter()
                .all(|r| r.filter != Filter::Profanity),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_long_text_is_screened_in_bounded_time_and_windows_miss_nothing() {
        let spaced = "x ".repeat(2500);
        let started = std::time::Instant::now();
        let verdict = screen(&spaced);
        let took = started.elapsed();
        assert!(verdict.decision == Decision::Approved || !verdict.reasons.is_empty());
        eprintln!("5,000 characters of \"x x x\": {took:?}");
        // Single letters between words are not joined, and cost no recursion.
        let alternating = "x yy ".repeat(1000);
        assert_eq!(screen(&alternating).decision, Decision::Approved);
        // Spaced-out swearing is still found when the text is joined.
        let spaced_swearing = format!("{}f u c k y o u", "x ".repeat(100));
        assert_ne!(screen(&spaced_swearing).decision, Decision::Approved);
        // A slur at every offset around a window boundary is still found.
        for pad in 300..340 {
            let text = format!(
                "{}go back home you n1gger {}",
                "a ".repeat(pad / 2),
                "b ".repeat(200)
            );
            assert_eq!(screen(&text).decision, Decision::Rejected, "pad {pad}");
        }
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
