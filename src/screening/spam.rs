//! Spam: a learned classifier plus a few heuristics (too many links,
//! shouting, gibberish).
//!
//! Each signal holds the comment for a human rather than rejecting it: a
//! false positive should cost a reader a delay, not their comment. The
//! classifier's threshold was chosen for precision (see docs/FILTERS.md). Duplicates and floods are handled per client in
//! [`super::duplicate`] and [`super::rate_limit`].

use std::sync::Arc;

use rustrict::Type;

use super::{ContentFilter, ScreenInput, classifier::Model};
use crate::domain::{Decision, Filter, Reason};

/// Limits of the spam heuristics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpamPolicy {
    /// More links than this hold the comment.
    pub max_links: usize,
    /// Hold shouting and gibberish too. Off by default: on labeled comment
    /// spam these style signals flagged 36 legitimate comments for none of
    /// the spam the classifier missed, so they are informational reasons.
    pub hold_style: bool,
}

impl Default for SpamPolicy {
    fn default() -> Self {
        Self {
            max_links: 2,
            hold_style: false,
        }
    }
}

/// Shouting: a text of some length written mostly in capitals.
fn is_shouting(text: &str) -> bool {
    let (upper, letters) = text
        .chars()
        .filter(|c| c.is_alphabetic())
        .fold((0usize, 0usize), |(upper, letters), c| {
            (upper + usize::from(c.is_uppercase()), letters + 1)
        });
    letters >= 20 && upper * 10 >= letters * 8
}

pub struct SpamFilter {
    policy: SpamPolicy,
    model: Option<Arc<Model>>,
}

impl SpamFilter {
    pub fn new(policy: SpamPolicy, model: Option<Arc<Model>>) -> Self {
        Self { policy, model }
    }
}

fn held(code: &str, message: String) -> Reason {
    Reason {
        filter: Filter::Spam,
        code: code.to_owned(),
        message,
        category: None,
        severity: None,
        decision: Decision::Held,
    }
}

impl ContentFilter for SpamFilter {
    fn inspect(&self, input: &ScreenInput<'_>, findings: &mut Vec<Reason>) {
        if let Some(model) = &self.model {
            let score = model.score_features(input.features);
            if score >= model.threshold {
                let words = model.top_words(input.text, 3);
                let links = input.text.link_count();
                let mut signals = words;
                if links > 0 {
                    signals.push(format!("{links} link(s)"));
                }
                findings.push(held(
                    "spam.classifier",
                    format!(
                        "The text looks like spam (score {score:.2}); strongest signals: {}.",
                        if signals.is_empty() {
                            "its overall shape".to_owned()
                        } else {
                            signals.join(", ")
                        }
                    ),
                ));
            }
        }
        let links = input.text.link_count();
        if links > self.policy.max_links {
            findings.push(held(
                "spam.too_many_links",
                format!(
                    "The text contains {links} links; at most {} are published without review.",
                    self.policy.max_links
                ),
            ));
        }
        if input.obfuscated {
            findings.push(held(
                "spam.obfuscated",
                "Much of the text is symbols and look-alike letters; a moderator reads it."
                    .to_owned(),
            ));
        }
        let style = |code: &str, message: &str| {
            let mut reason = held(code, message.to_owned());
            if !self.policy.hold_style {
                reason.decision = Decision::Approved;
            }
            reason
        };
        if is_shouting(input.text.text()) {
            findings.push(style(
                "spam.shouting",
                "The text is written mostly in capital letters.",
            ));
        } else if input.text_type.is(Type::SPAM & Type::MODERATE_OR_HIGHER) {
            findings.push(style(
                "spam.gibberish",
                "The text looks repetitive or like gibberish.",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shouting_needs_length_and_mostly_capitals() {
        assert!(is_shouting("THIS IS THE WORST ARTICLE I HAVE EVER READ"));
        assert!(!is_shouting("NASA and the EU agree"));
        assert!(!is_shouting("OK"));
    }
}
