//! Profanity: rustrict's categories and severities mapped to decisions.
//!
//! rustrict already undoes the usual evasions (l33t speak, spacing,
//! repeated letters, homoglyphs from other scripts) before it matches, so
//! this filter only turns its analysis into findings: one per category found,
//! at the highest severity found, with a decision from the policy.

use rustrict::Type;

use super::{ContentFilter, ScreenInput};
use crate::domain::{Decision, Filter, Reason, Severity};

/// Which severity holds and which rejects. `None` disables that step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfanityPolicy {
    pub hold_at: Option<Severity>,
    pub reject_at: Option<Severity>,
}

impl Default for ProfanityPolicy {
    /// Severe: rejected; moderate: held; mild: approved (censored text
    /// offered).
    fn default() -> Self {
        Self {
            hold_at: Some(Severity::Moderate),
            reject_at: Some(Severity::Severe),
        }
    }
}

impl ProfanityPolicy {
    pub fn decide(&self, severity: Severity) -> Decision {
        if self.reject_at.is_some_and(|at| severity >= at) {
            Decision::Rejected
        } else if self.hold_at.is_some_and(|at| severity >= at) {
            Decision::Held
        } else {
            Decision::Approved
        }
    }
}

const CATEGORIES: [(Type, &str); 5] = [
    (Type::PROFANE, "profane"),
    (Type::OFFENSIVE, "offensive"),
    (Type::SEXUAL, "sexual"),
    (Type::MEAN, "mean"),
    (Type::EVASIVE, "evasive"),
];

/// The highest severity of one category in a rustrict analysis.
fn severity_of(analysis: Type, category: Type) -> Option<Severity> {
    let found = analysis & category;
    if found.is(Type::SEVERE) {
        Some(Severity::Severe)
    } else if found.is(Type::MODERATE) {
        Some(Severity::Moderate)
    } else if found.is(Type::MILD) {
        Some(Severity::Mild)
    } else {
        None
    }
}

pub struct ProfanityFilter {
    policy: ProfanityPolicy,
}

impl ProfanityFilter {
    pub fn new(policy: ProfanityPolicy) -> Self {
        Self { policy }
    }

    fn findings(&self, analysis: Type, field: &str, findings: &mut Vec<Reason>) {
        for (category, name) in CATEGORIES {
            let Some(severity) = severity_of(analysis, category) else {
                continue;
            };
            let mut decision = self.policy.decide(severity);
            if category == Type::EVASIVE {
                // Evasion alone is suspicious, not proof: a human decides.
                decision = decision.min(Decision::Held);
            }
            let (code, message) = if field == "text" {
                (
                    format!("profanity.{}", severity.as_str()),
                    format!("The text contains {} {name} language.", severity.as_str()),
                )
            } else {
                (
                    format!("profanity.author_name.{}", severity.as_str()),
                    format!(
                        "The author name contains {} {name} language.",
                        severity.as_str()
                    ),
                )
            };
            findings.push(Reason {
                filter: Filter::Profanity,
                code,
                message,
                category: Some(name.to_owned()),
                severity: Some(severity),
                decision,
            });
        }
    }
}

impl ContentFilter for ProfanityFilter {
    fn inspect(&self, input: &ScreenInput<'_>, findings: &mut Vec<Reason>) {
        self.findings(input.text_type, "text", findings);
        self.findings(input.author_type, "author_name", findings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{AuthorName, CommentText, Verdict},
        moderation::{Pipeline, SpamPolicy},
    };

    fn screen_with(policy: ProfanityPolicy, author: &str, text: &str) -> Verdict {
        Pipeline::new(policy, SpamPolicy::default(), Default::default()).screen(
            Some(&AuthorName::parse(author).unwrap()),
            &CommentText::parse(text, 5000).unwrap(),
        )
    }

    fn screen(text: &str) -> Verdict {
        screen_with(ProfanityPolicy::default(), "Reader", text)
    }

    fn profanity(verdict: &Verdict) -> Vec<&Reason> {
        verdict
            .reasons
            .iter()
            .filter(|r| r.filter == Filter::Profanity)
            .collect()
    }

    #[test]
    fn severe_profanity_is_rejected_with_category_and_severity() {
        let verdict = screen("fuck you, go kill yourself");
        assert_eq!(verdict.decision, Decision::Rejected);
        let severe = profanity(&verdict)
            .into_iter()
            .find(|r| r.severity == Some(Severity::Severe))
            .expect("a severe finding");
        assert!(severe.category.is_some());
        assert!(verdict.censored_text.as_deref().unwrap().contains('*'));
    }

    #[test]
    fn a_slur_is_rejected() {
        assert_eq!(
            screen("go back home you n1gger").decision,
            Decision::Rejected
        );
    }

    #[test]
    fn leetspeak_is_caught() {
        assert_ne!(screen("f4ck th1s sh1t").decision, Decision::Approved);
    }

    #[test]
    fn spacing_is_caught() {
        assert_ne!(
            screen("what a f u c k i n g joke").decision,
            Decision::Approved
        );
    }

    #[test]
    fn homoglyphs_are_caught() {
        // Cyrillic 'с' and 'к', Greek 'υ'.
        assert_ne!(screen("fυсk this").decision, Decision::Approved);
    }

    #[test]
    fn repeated_letters_are_caught() {
        assert_ne!(screen("fuuuuuck this").decision, Decision::Approved);
    }

    #[test]
    fn mild_language_is_approved_with_a_censored_text() {
        let verdict = screen("damn, that is a good point");
        assert_eq!(verdict.decision, Decision::Approved);
        let mild = profanity(&verdict);
        assert!(
            mild.iter().all(|r| r.severity == Some(Severity::Mild)),
            "{mild:?}"
        );
    }

    #[test]
    fn clean_words_that_contain_rude_substrings_pass() {
        for text in [
            "I grew up in Scunthorpe",
            "The assassin passed the classic bass",
        ] {
            assert_eq!(screen(text).decision, Decision::Approved, "{text}");
        }
    }

    #[test]
    fn an_offensive_author_name_is_flagged() {
        let verdict = screen_with(ProfanityPolicy::default(), "fuck face", "Nice article");
        assert_ne!(verdict.decision, Decision::Approved);
        assert!(
            verdict
                .reasons
                .iter()
                .any(|r| r.code.starts_with("profanity.author_name"))
        );
    }

    #[test]
    fn thresholds_are_configurable() {
        let lenient = ProfanityPolicy {
            hold_at: None,
            reject_at: None,
        };
        assert_eq!(
            screen_with(lenient, "Reader", "fuck you, go kill yourself").decision,
            Decision::Approved
        );
        let strict = ProfanityPolicy {
            hold_at: Some(Severity::Mild),
            reject_at: Some(Severity::Moderate),
        };
        assert_ne!(
            screen_with(strict, "Reader", "damn, that is a good point").decision,
            Decision::Approved
        );
    }
}
