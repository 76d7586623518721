//! The one text normaliser every filter and every model feature reads.
//!
//! Comments arrive as people paste them: HTML entities from scraped text,
//! zero-width characters, letters from other scripts that look Latin
//! (Cyrillic "с" in "fυсk"), links, @mentions and numbers. Each filter used
//! to undo a different subset of that; now [`Normalized::new`] does it once:
//!
//! 1. HTML character references are decoded (`&amp;` → `&`, `&#8220;` → `“`)
//!    and tags dropped, keeping a link's `href` target as text;
//! 2. Unicode NFC; invisible characters (zero-width, BOM, bidi controls,
//!    soft hyphen) removed;
//! 3. confusable letters from other scripts folded to the Latin letter they
//!    imitate (Unicode's confusables skeleton, for non-ASCII letters whose
//!    skeleton is one ASCII letter); accented Latin letters are kept;
//! 4. links (with or without a scheme, found by the `linkify` crate) and
//!    @mentions located once, as byte ranges of the normalised text.
//!
//! [`Normalized::language_only`] then blanks what is not language (links,
//! mentions, plain numbers) for rustrict and the word features, keeping
//! every character's position so censored text can be mapped back.

use std::ops::Range;

use linkify::{LinkFinder, LinkKind};

/// A part of a normalised text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Link(&'a str),
    Mention(&'a str),
}

/// A comment's text after normalisation, with its links and mentions.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    text: String,
    links: Vec<Range<usize>>,
    mentions: Vec<Range<usize>>,
}

impl Normalized {
    pub fn new(raw: &str) -> Self {
        let text = fold_characters(&strip_html(raw));
        let links = find_links(&text);
        let mentions = find_mentions(&text, &links);
        Self {
            text,
            links,
            mentions,
        }
    }

    /// The text in order as plain text, links and mentions.
    pub fn pieces(&self) -> Vec<Piece<'_>> {
        let mut spans: Vec<(&Range<usize>, bool)> = self
            .links
            .iter()
            .map(|range| (range, true))
            .chain(self.mentions.iter().map(|range| (range, false)))
            .collect();
        spans.sort_by_key(|(range, _)| range.start);
        let mut pieces = Vec::with_capacity(2 * spans.len() + 1);
        let mut at = 0;
        for (range, is_link) in spans {
            if range.start > at {
                pieces.push(Piece::Text(&self.text[at..range.start]));
            }
            let piece = &self.text[range.clone()];
            pieces.push(if is_link {
                Piece::Link(piece)
            } else {
                Piece::Mention(piece)
            });
            at = range.end;
        }
        if at < self.text.len() {
            pieces.push(Piece::Text(&self.text[at..]));
        }
        pieces
    }

    /// The normalised text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The links, in order.
    pub fn links(&self) -> impl Iterator<Item = &str> {
        self.links.iter().map(|range| &self.text[range.clone()])
    }

    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    pub fn mention_count(&self) -> usize {
        self.mentions.len()
    }

    /// The text with links, @mentions and numbers ("3003", "2,990", "3.5%",
    /// "2026-11-27", "$500k", "£2.5bn", "1990s", "21st") blanked, one space
    /// per character, so positions are kept. rustrict reads digits and `$`
    /// as letters to catch l33t speak, which makes vote counts and prices
    /// look like words ("3008" as "boob", "a $500k" as "ass"); other tokens
    /// mixing letters and digits ("f4ck", "a55") are kept, so evasions are
    /// still caught.
    pub fn language_only(&self) -> String {
        let mut spans: Vec<&Range<usize>> = self.links.iter().chain(&self.mentions).collect();
        spans.sort_by_key(|range| range.start);
        let mut spans = spans.into_iter().peekable();
        let mut out = String::with_capacity(self.text.len());
        let mut position = 0;
        for token in self.text.split_inclusive(char::is_whitespace) {
            let start = position;
            position += token.len();
            let number = is_number(token.trim_end_matches(char::is_whitespace));
            for (offset, c) in token.char_indices() {
                let at = start + offset;
                while spans.next_if(|span| span.end <= at).is_some() {}
                let in_span = spans.peek().is_some_and(|span| span.contains(&at));
                let blank = !c.is_whitespace() && (in_span || number);
                out.push(if blank { ' ' } else { c });
            }
        }
        out
    }
}

/// Decodes character references and drops tags, keeping `href` targets.
fn strip_html(raw: &str) -> String {
    let without_tags = if raw.contains('<') {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(open) = rest.find('<') {
            out.push_str(&rest[..open]);
            let tag = &rest[open..];
            // A tag is `<` then a letter, `/` or `!`, closed within 400 bytes.
            let is_tag = tag[1..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!');
            match tag.char_indices().take(400).find(|&(_, c)| c == '>') {
                Some((close, _)) if is_tag => {
                    if let Some(href) = href_target(&tag[..close]) {
                        out.push(' ');
                        out.push_str(href);
                    }
                    out.push(' ');
                    rest = &tag[close + 1..];
                }
                _ => {
                    out.push('<');
                    rest = &tag[1..];
                }
            }
        }
        out.push_str(rest);
        out
    } else {
        raw.to_owned()
    };
    html_escape::decode_html_entities(&without_tags).into_owned()
}

fn href_target(tag: &str) -> Option<&str> {
    let at = tag.find("href=")?;
    let rest = tag[at + 5..].trim_start_matches(['"', '\'']);
    let end = rest.find(['"', '\'', ' ']).unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// NFC, invisible characters removed, confusables folded.
fn fold_characters(text: &str) -> String {
    // ASCII has nothing to compose, hide or fold; most comments are ASCII.
    if text.is_ascii() {
        return text.to_owned();
    }
    crate::domain::nfc(text)
        .chars()
        .filter(|&c| !is_invisible(c))
        .map(|c| if c.is_ascii() { c } else { fold_confusable(c) })
        .collect()
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
        | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}' | '\u{3164}' | '\u{feff}' | '\u{ffa0}' | '\u{fe00}'..='\u{fe0f}')
}

/// A non-ASCII letter whose confusables skeleton is one ASCII letter
/// becomes that letter (Cyrillic "а" → "a", Greek "υ" → "u", fullwidth
/// "Ａ" → "A"); anything else, accented Latin letters included, is kept.
fn fold_confusable(c: char) -> char {
    if !c.is_alphabetic() || is_latin_with_diacritic(c) {
        return c;
    }
    let mut buffer = [0u8; 4];
    let mut skeleton = unicode_security::skeleton(c.encode_utf8(&mut buffer));
    match (skeleton.next(), skeleton.next()) {
        (Some(folded), None) if folded.is_ascii_alphabetic() => folded,
        _ => c,
    }
}

/// "é", "ß", "ø": Latin letters that carry meaning in other languages.
fn is_latin_with_diacritic(c: char) -> bool {
    matches!(c, '\u{00c0}'..='\u{024f}' | '\u{1e00}'..='\u{1eff}')
}

fn find_links(text: &str) -> Vec<Range<usize>> {
    let mut finder = LinkFinder::new();
    finder.url_must_have_scheme(false).kinds(&[LinkKind::Url]);
    finder
        .links(text)
        .filter(|link| is_link(link.as_str()))
        .map(|link| link.start()..link.end())
        .collect()
}

/// linkify accepts any `name.tld`; a bare domain counts as a link when its
/// last label is a real-looking top-level domain (letters, 2–24) and the
/// name before it is not a single letter ("e.g", "U.S").
fn is_link(candidate: &str) -> bool {
    if candidate.contains("://") || candidate.to_ascii_lowercase().starts_with("www.") {
        return true;
    }
    let host = candidate
        .split(['/', '?', '#', ':'])
        .next()
        .unwrap_or_default();
    let mut labels = host.rsplit('.');
    let (Some(tld), Some(name)) = (labels.next(), labels.next()) else {
        return false;
    };
    (2..=24).contains(&tld.len())
        && tld.chars().all(|c| c.is_ascii_alphabetic())
        && name.chars().filter(char::is_ascii_alphanumeric).count() >= 2
}

/// `@name` not inside a link and not an e-mail address (no letter right
/// before the `@`).
fn find_mentions(text: &str, links: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut mentions = Vec::new();
    for (at, _) in text.match_indices('@') {
        if links.iter().any(|link| link.contains(&at)) {
            continue;
        }
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
        {
            continue;
        }
        let name_len: usize = text[at + 1..]
            .chars()
            .take_while(|&c| c.is_alphanumeric() || c == '_' || c == '.')
            .map(char::len_utf8)
            .sum();
        let name = text[at + 1..at + 1 + name_len].trim_end_matches('.');
        if !name.is_empty() {
            mentions.push(at..at + 1 + name.len());
        }
    }
    mentions
}

/// Units and magnitudes written right after a number: "500k", "2.5bn",
/// "1990s", "21st", "9am", "40km".
const NUMBER_SUFFIXES: &[&str] = &[
    "k", "m", "b", "bn", "mn", "tn", "s", "st", "nd", "rd", "th", "am", "pm", "km", "kg", "cm",
    "mm", "ft", "lb", "lbs", "mph", "kph", "x",
];

/// A number as people write one: digits and number punctuation (currency
/// signs included), optionally followed by a unit or magnitude of
/// [`NUMBER_SUFFIXES`], in any case.
fn is_number(token: &str) -> bool {
    let trimmed = token.trim_end_matches(|c: char| ",.:;!?'\")".contains(c));
    let body = trimmed.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &trimmed[body.len()..];
    is_plain_number(body)
        && body.ends_with(|c: char| c.is_ascii_digit() || c == '%')
        && (suffix.is_empty()
            || NUMBER_SUFFIXES
                .iter()
                .any(|unit| unit.eq_ignore_ascii_case(suffix)))
}

/// A token made of digits and number punctuation only.
fn is_plain_number(token: &str) -> bool {
    token.chars().any(|c| c.is_ascii_digit())
        && token
            .chars()
            .all(|c| c.is_ascii_digit() || ",.:;%/+-$€£()#!?'\"".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_are_decoded_and_tags_dropped_keeping_link_targets() {
        let normalized = Normalized::new(
            "&#8220;Fair&#8221; &amp; <b>true</b> <a href=\"http://x.example/a\">here</a>",
        );
        assert_eq!(
            normalized.text(),
            "“Fair” &  true   http://x.example/a here "
        );
        assert_eq!(normalized.link_count(), 1);
    }

    #[test]
    fn numbers_with_units_are_blanked_and_evasions_kept() {
        for number in [
            "3008", "2,990", "3.5%", "$500k", "£2.5bn", "1990s", "21st", "9AM", "(40km)", "$1.2M,",
            "10x",
        ] {
            assert!(is_number(number), "{number}");
        }
        for word in [
            "f4ck", "a55", "5hit", "sh1t", "b00bs", "k", "$", "%s", "4ss", "500kk",
        ] {
            assert!(!is_number(word), "{word}");
        }
        assert_eq!(
            Normalized::new("a $500k loan, not a55").language_only(),
            "a       loan, not a55"
        );
    }

    #[test]
    fn a_lone_angle_bracket_is_text_not_a_tag() {
        assert_eq!(Normalized::new("3 < 5 and 7 > 2").text(), "3 < 5 and 7 > 2");
    }

    #[test]
    fn invisible_characters_are_removed_and_text_is_nfc() {
        assert_eq!(Normalized::new("fu\u{200b}ck\u{feff}").text(), "fuck");
        assert_eq!(Normalized::new("cafe\u{301}").text(), "café");
    }

    #[test]
    fn homoglyphs_from_other_scripts_fold_to_latin_but_accents_stay() {
        // Cyrillic с and к, Greek υ, fullwidth Ａ.
        assert_eq!(Normalized::new("fυсk Ａ").text(), "fuck A");
        assert_eq!(
            Normalized::new("Müller Ødegaard naïve").text(),
            "Müller Ødegaard naïve"
        );
        // Whole words in another script are folded letter by letter only
        // where a letter has a one-letter Latin skeleton.
        let russian = Normalized::new("привет");
        assert_eq!(russian.text().chars().count(), 6);
    }

    #[test]
    fn links_with_and_without_scheme_are_found_once() {
        let normalized = Normalized::new(
            "See https://www.bls.gov/cpi.htm, www.example.org and census.gov. (e.g. the U.S. grew 3.5%)",
        );
        let links: Vec<&str> = normalized.links().collect();
        assert_eq!(
            links,
            [
                "https://www.bls.gov/cpi.htm",
                "www.example.org",
                "census.gov"
            ]
        );
    }

    #[test]
    fn mentions_are_found_but_not_email_addresses() {
        let normalized = Normalized::new("@Maria_B you are right; mail bob@example.org");
        assert_eq!(normalized.mention_count(), 1);
        assert_eq!(normalized.link_count(), 0);
    }

    #[test]
    fn language_only_blanks_links_mentions_and_numbers_keeping_positions() {
        let normalized =
            Normalized::new("hi @Chink_19 see http://t.co/xXx, vote 3003 to 2,990 f4ck");
        let blanked = normalized.language_only();
        assert_eq!(blanked.chars().count(), normalized.text().chars().count());
        assert!(!blanked.contains("Chink") && !blanked.contains("xXx"));
        assert!(!blanked.contains("3003") && !blanked.contains("990"));
        assert!(
            blanked.starts_with("hi ") && blanked.contains(" see ") && blanked.ends_with("f4ck")
        );
    }
}
