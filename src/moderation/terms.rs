//! Moderators' term lists: blocked terms (hold or reject) and allowed terms
//! (false-positive fixes, such as a place name with a rude substring).
//!
//! The lists live in the store and are compiled into a [`TermSet`] that the
//! pipeline reads on every submission; a change swaps in a new set, so it
//! applies to the next submission without a restart.
//!
//! Matching is on whole words, case-insensitively, after NFC. Blocked terms
//! do not get rustrict's evasion handling: they are exact phrases.

use std::sync::{Arc, RwLock};

use unicode_normalization::UnicodeNormalization;

use crate::domain::{Decision, Filter, Reason, Term, TermEffect};

/// The compiled lists.
#[derive(Debug, Default)]
pub struct TermSet {
    blocked: Vec<(Vec<char>, String, Decision)>,
    allowed: Vec<(Vec<char>, String)>,
}

/// What the lists found in a text.
#[derive(Debug, Default)]
pub struct TermMatches {
    pub reasons: Vec<Reason>,
    /// Char ranges of allowed terms, hidden from the profanity filter.
    pub allowed_spans: Vec<(usize, usize)>,
}

impl TermSet {
    pub fn new(terms: &[Term]) -> Self {
        let mut set = Self::default();
        for term in terms {
            let chars: Vec<char> = term.text.chars().collect();
            match term.effect {
                TermEffect::Allow => set.allowed.push((chars, term.text.clone())),
                TermEffect::Hold => set.blocked.push((chars, term.text.clone(), Decision::Held)),
                TermEffect::Reject => {
                    set.blocked
                        .push((chars, term.text.clone(), Decision::Rejected));
                }
            }
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.blocked.is_empty() && self.allowed.is_empty()
    }

    /// Finds the terms in `text` (one lower-case char per input char, so
    /// spans index the original text's chars).
    pub fn find(&self, text: &str) -> TermMatches {
        let mut matches = TermMatches::default();
        if self.is_empty() {
            return matches;
        }
        let lower: Vec<char> = text
            .nfc()
            .map(|c| c.to_lowercase().next().unwrap_or(c))
            .collect();
        for (chars, term, decision) in &self.blocked {
            if !find_words(&lower, chars).is_empty() {
                matches.reasons.push(Reason {
                    filter: Filter::Terms,
                    code: "terms.blocked".to_owned(),
                    message: format!("The text contains the blocked term \"{term}\"."),
                    category: None,
                    severity: None,
                    decision: *decision,
                });
            }
        }
        for (chars, term) in &self.allowed {
            let spans = find_words(&lower, chars);
            if !spans.is_empty() {
                matches.reasons.push(Reason {
                    filter: Filter::Terms,
                    code: "terms.allowed".to_owned(),
                    message: format!(
                        "\"{term}\" is on the allowed list: not screened for profanity."
                    ),
                    category: None,
                    severity: None,
                    decision: Decision::Approved,
                });
                matches.allowed_spans.extend(spans);
            }
        }
        matches
    }
}

/// Whole-word occurrences of `needle` (char ranges).
fn find_words(haystack: &[char], needle: &[char]) -> Vec<(usize, usize)> {
    let word = |c: &char| c.is_alphanumeric();
    let mut found = Vec::new();
    if needle.is_empty() || needle.len() > haystack.len() {
        return found;
    }
    for start in 0..=haystack.len() - needle.len() {
        let end = start + needle.len();
        if haystack[start..end] == *needle
            && (start == 0 || !word(&haystack[start - 1]))
            && (end == haystack.len() || !word(&haystack[end]))
        {
            found.push((start, end));
        }
    }
    found
}

/// The live term lists, shared by the pipeline and the moderation service.
#[derive(Debug, Default)]
pub struct TermList {
    current: RwLock<Arc<TermSet>>,
}

impl TermList {
    pub fn new(terms: &[Term]) -> Self {
        Self {
            current: RwLock::new(Arc::new(TermSet::new(terms))),
        }
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<TermSet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Swaps in new lists.
    pub fn replace(&self, terms: &[Term]) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(TermSet::new(terms));
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn term(text: &str, effect: TermEffect) -> Term {
        Term {
            text: text.to_owned(),
            effect,
            added_by: "m".to_owned(),
            added_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn blocked_terms_match_whole_words_case_insensitively() {
        let set = TermSet::new(&[term("buy gold", TermEffect::Reject)]);
        assert_eq!(set.find("Please BUY GOLD now").reasons.len(), 1);
        assert!(set.find("buy golden eggs").reasons.is_empty());
    }

    #[test]
    fn allowed_terms_give_their_spans() {
        let set = TermSet::new(&[term("scunthorpe", TermEffect::Allow)]);
        let matches = set.find("Greetings from Scunthorpe!");
        assert_eq!(matches.allowed_spans, vec![(15, 25)]);
        assert_eq!(matches.reasons[0].decision, Decision::Approved);
    }
}
