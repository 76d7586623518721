//! The screening pipeline: ordered content filters, each adding findings.
//!
//! The text (and author name) is analysed by rustrict once; each filter
//! reads that shared analysis and adds [`Reason`]s. The strictest decision of
//! all findings wins, and every decision other than approval carries at
//! least one reason, so a moderator or an author can always see why.
//!
//! Stateful checks that depend on who submits (rate limit, duplicates) live
//! beside the pipeline in [`rate_limit`] and [`duplicate`]: `CheckComment`
//! runs the pipeline alone, without touching them.

pub mod duplicate;
pub mod profanity;
pub mod rate_limit;
pub mod spam;

use rustrict::{Censor, Type};

use crate::domain::{AuthorName, CommentText, Verdict};

pub use profanity::ProfanityPolicy;
pub use spam::SpamPolicy;

/// What every filter sees: the input and rustrict's analysis of it.
pub struct ScreenInput<'a> {
    pub author_name: &'a str,
    pub text: &'a str,
    pub text_type: Type,
    pub author_type: Type,
}

/// One step of the pipeline.
pub trait ContentFilter: Send + Sync {
    /// Adds this filter's findings about `input` to `findings`.
    fn inspect(&self, input: &ScreenInput<'_>, findings: &mut Vec<crate::domain::Reason>);
}

/// The ordered content filters.
pub struct Pipeline {
    filters: Vec<Box<dyn ContentFilter>>,
}

impl Pipeline {
    pub fn new(profanity: ProfanityPolicy, spam: SpamPolicy) -> Self {
        Self {
            filters: vec![
                Box::new(profanity::ProfanityFilter::new(profanity)),
                Box::new(spam::SpamFilter::new(spam)),
            ],
        }
    }

    /// Screens a comment's content.
    pub fn screen(&self, author_name: &AuthorName, text: &CommentText) -> Verdict {
        let (censored, text_type) = Censor::from_str(text.as_str()).censor_and_analyze();
        let author_type = Censor::from_str(author_name.as_str()).analyze();
        let input = ScreenInput {
            author_name: author_name.as_str(),
            text: text.as_str(),
            text_type,
            author_type,
        };
        let mut findings = Vec::new();
        for filter in &self.filters {
            filter.inspect(&input, &mut findings);
        }
        let censored_text = (censored != text.as_str()).then_some(censored);
        Verdict::from_reasons(findings, censored_text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Decision, Filter};

    fn screen(text: &str) -> Verdict {
        let pipeline = Pipeline::new(ProfanityPolicy::default(), SpamPolicy::default());
        pipeline.screen(
            &AuthorName::parse("Reader").unwrap(),
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
