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
//! runs the pipeline alone, without touching them. [`pool`] runs the
//! pipeline on threads of its own, with bounded concurrency and queue.

pub mod censor;
pub mod classifier;
pub mod duplicate;
pub mod normalize;
pub mod pool;
pub mod profanity;
pub mod rate_limit;
pub mod spam;
pub mod terms;
pub mod toxicity;
#[cfg(feature = "train")]
pub mod train;

use std::sync::Arc;

use rustrict::Type;

use crate::domain::{AuthorName, CommentText, Verdict};
use censor::censor_and_analyze;
pub use censor::screening_type;
use classifier::{Model, ModelError, OFFENSIVE_MODEL, SPAM_MODEL, TOXICITY_MODEL, TextFeatures};
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
    /// The text's model features, extracted once for every model.
    pub features: &'a TextFeatures<'a>,
    /// Part of the text is mostly look-alike characters, unreadable to
    /// rustrict at a bounded cost (see [`censor`]).
    pub obfuscated: bool,
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
        let analysis = censor_and_analyze(&masked);
        let censored = unmask(normalized.text(), &masked, analysis.censored);
        let author_name = author_name.map_or("", AuthorName::as_str);
        let author_type = if author_name.is_empty() {
            Type::NONE
        } else {
            screening_type(&Normalized::new(author_name))
        };
        let features = TextFeatures::new(&normalized, Some(analysis.found));
        let input = ScreenInput {
            author_name,
            text: &normalized,
            text_type: analysis.found,
            features: &features,
            obfuscated: analysis.obfuscated,
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
    fn numbers_are_not_read_as_words() {
        for text in [
            "The vote was 3003 to 2990.",
            "I paid 3008 dollars",
            "Flight 8008 was late",
            "Comment number 493",
            "They paid a $550k premium for it",
            "Rents were half that in the 1990s.",
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
    fn a_long_text_of_look_alikes_is_held_as_obfuscated() {
        let soup = "x*(k|l!i# ".repeat(40);
        let verdict = screen(&soup);
        assert_eq!(verdict.decision, Decision::Held, "{verdict:?}");
        assert!(verdict.reasons.iter().any(|r| r.code == "spam.obfuscated"));
        // A slur inside look-alike noise is still found when spelt out.
        let hidden = format!("{soup} you nigger {soup}");
        assert_eq!(screen(&hidden).decision, Decision::Rejected);
        // No ordinary comment counts as obfuscated.
        let ordinary = include_str!("../../tests/data/news_ordinary.txt");
        for line in ordinary.lines().filter(|l| !l.trim().is_empty()) {
            let verdict = screen(line);
            assert!(
                verdict.reasons.iter().all(|r| r.code != "spam.obfuscated"),
                "{line}"
            );
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
