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

use aho_corasick::AhoCorasick;

use unicode_normalization::UnicodeNormalization;

use crate::domain::{Decision, Filter, Reason, Term, TermEffect};

/// The compiled lists: one Aho-Corasick automaton over every term, so a
/// submission is scanned once however long the lists grow.
#[derive(Debug, Default)]
pub struct TermSet {
    matcher: Option<AhoCorasick>,
    /// Per pattern of the automaton: the term and what it does.
    terms: Vec<(String, TermEffect)>,
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
        let terms: Vec<(String, TermEffect)> = terms
            .iter()
            .map(|term| (term.text.clone(), term.effect))
            .collect();
        let matcher = if terms.is_empty() {
            None
        } else {
            match AhoCorasick::new(terms.iter().map(|(text, _)| text)) {
                Ok(matcher) => Some(matcher),
                Err(error) => {
                    tracing::error!(%error, "cannot compile the term lists; they are ignored");
                    None
                }
            }
        };
        Self { matcher, terms }
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Finds the terms in `text`, as whole words, case-insensitively. Spans
    /// are char ranges of `text` (lower-casing keeps one char per char).
    pub fn find(&self, text: &str) -> TermMatches {
        let mut matches = TermMatches::default();
        let Some(matcher) = &self.matcher else {
            return matches;
        };
        let lower: String = text
            .nfc()
            .map(|c| c.to_lowercase().next().unwrap_or(c))
            .collect();
        let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
        let mut found = vec![false; self.terms.len()];
        for hit in matcher.find_overlapping_iter(&lower) {
            let (start, end) = (hit.start(), hit.end());
            if is_word(lower[..start].chars().next_back()) || is_word(lower[end..].chars().next()) {
                continue;
            }
            let index = hit.pattern().as_usize();
            if self.terms[index].1 == TermEffect::Allow {
                let char_start = lower[..start].chars().count();
                let char_end = char_start + lower[start..end].chars().count();
                matches.allowed_spans.push((char_start, char_end));
            }
            found[index] = true;
        }
        for (index, (term, effect)) in self.terms.iter().enumerate() {
            if !found[index] {
                continue;
            }
            let (code, message, decision) = match effect {
                TermEffect::Allow => (
                    "terms.allowed",
                    format!("\"{term}\" is on the allowed list: not screened for profanity."),
                    Decision::Approved,
                ),
                TermEffect::Hold => (
                    "terms.blocked",
                    format!("The text contains the blocked term \"{term}\"."),
                    Decision::Held,
                ),
                TermEffect::Reject => (
                    "terms.blocked",
                    format!("The text contains the blocked term \"{term}\"."),
                    Decision::Rejected,
                ),
            };
            matches.reasons.push(Reason {
                filter: Filter::Terms,
                code: code.to_owned(),
                message,
                category: None,
                severity: None,
                decision,
            });
        }
        matches
    }
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

    #[test]
    fn many_terms_are_matched_in_one_pass_including_overlaps() {
        let mut terms: Vec<Term> = (0..5000)
            .map(|i| term(&format!("spamword{i}"), TermEffect::Hold))
            .collect();
        terms.push(term("gold", TermEffect::Reject));
        terms.push(term("buy gold", TermEffect::Reject));
        let set = TermSet::new(&terms);
        let matches = set.find("Buy gold and spamword4999 today");
        let messages: Vec<_> = matches.reasons.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(set.find("goldfish").reasons.is_empty());
    }
}
