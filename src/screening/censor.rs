//! rustrict's one pass over a comment, with its cost bounded per character.
//!
//! rustrict undoes evasions (spacing, repeated letters, punctuation between
//! letters), and on degenerate input that makes its cost grow with the square
//! of the text: 5,000 characters of `"x x x …"` took 40–90 ms. Three steps keep
//! the cost linear without hiding anything rustrict would find:
//! - runs of single letters are joined ("f u c k" → "fuck"), as rustrict's
//!   spacing detection would join them;
//! - a run of one letter longer than [`MAX_LETTER_RUN`] (counting letters
//!   only, so "x.x.x" and "x-x x-x" are runs too) is cut, as rustrict reads
//!   "fuuuuuck" as "fuck" anyway;
//! - long texts are read in windows that overlap at their seams.
//!
//! When the first two change the text, the analysis is of the changed text
//! and the text is offered uncensored (positions no longer line up).

use std::{borrow::Cow, sync::LazyLock};

use rustrict::{Censor, Replacements, Type};

use super::Normalized;

/// rustrict's analysis of a normalised text as the pipeline (and model
/// training) sees it: links, mentions and plain numbers blanked.
pub fn screening_type(text: &Normalized) -> Type {
    censor_and_analyze(&text.language_only()).found
}

/// rustrict reads at most this many characters at once.
const RUSTRICT_WINDOW: usize = 320;
/// Characters each window shares with the next, so that a word spread over
/// a window boundary ("f u c k") is still seen whole.
const RUSTRICT_OVERLAP: usize = 48;

/// rustrict's censored text and analysis, with spaced-out letters joined
/// ([`collapse_spaced_letters`]) and over-long letter runs cut
/// ([`cut_letter_runs`]) first; windows of [`RUSTRICT_WINDOW`] characters,
/// split at whitespace where possible, each analysed with
/// [`RUSTRICT_OVERLAP`] characters of the next, and the analyses combined.
pub(super) fn censor_and_analyze(text: &str) -> Analysis {
    let mut analysed = Cow::Borrowed(text);
    if let Some(collapsed) = collapse_spaced_letters(&analysed) {
        analysed = Cow::Owned(collapsed);
    }
    if let Some(cut) = cut_symbol_runs(&analysed) {
        analysed = Cow::Owned(cut);
    }
    if let Some(cut) = cut_letter_runs(&analysed) {
        analysed = Cow::Owned(cut);
    }
    match analysed {
        Cow::Borrowed(_) => censor_and_analyze_windows(text),
        Cow::Owned(changed) => Analysis {
            censored: text.to_owned(),
            ..censor_and_analyze_windows(&changed)
        },
    }
}

/// What rustrict found in a text.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Analysis {
    /// The text with what rustrict found censored (or the text itself when
    /// it was changed before analysis).
    pub censored: String,
    pub found: Type,
    /// Part of the text was mostly look-alike characters
    /// ([`is_obfuscated`]) and was read literally.
    pub obfuscated: bool,
}

/// Non-blank characters from which a window may count as obfuscated: below
/// this, even the costliest text is cheap (128 characters ≈ 2 ms).
const OBFUSCATION_MIN_CHARACTERS: usize = 128;

/// Whether a text is mostly built of look-alikes that rustrict may read as
/// several letters: "x" as c, e, i, u or x, "k" as c or k (one point each);
/// symbols such as "*" (any vowel), "(" (c, i or l), "|", "@" (two points,
/// since rustrict also skips them inside words). Obfuscated at 0.45 points a
/// non-blank character. rustrict's cost on such text is about 16 µs a
/// character (every look-alike keeps all partial matches alive), so it is
/// read literally, without look-alikes, and held. English prose scores about
/// 0.25; of 7,600 windows of 128 or more characters in the news and YouTube
/// comments, 3 reach 0.45 (runs of "!!" and "KILL!! KILL!").
fn is_obfuscated(text: &str, min_characters: usize) -> bool {
    let (mut visible, mut points) = (0, 0);
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        visible += 1;
        points += match read_as(c) {
            Some(_) if !c.is_alphanumeric() => 2,
            Some(letters) if letters.count_ones() > 1 => 1,
            _ => 0,
        };
    }
    visible >= min_characters && points * 20 >= visible * 9
}

/// rustrict's censored text and findings for one window, read literally
/// (without look-alike replacements) when `literally`.
fn censor_window(window: &str, literally: bool) -> Analysis {
    static LITERAL: LazyLock<Replacements> = LazyLock::new(Replacements::new);
    let mut censor = Censor::from_str(window);
    if literally {
        censor.with_replacements(&LITERAL);
    }
    let (censored, found) = censor.censor_and_analyze();
    Analysis {
        censored,
        found,
        obfuscated: literally,
    }
}

/// [`censor_and_analyze`] of a text that is not spaced out, window by window.
fn censor_and_analyze_windows(text: &str) -> Analysis {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= RUSTRICT_WINDOW {
        return censor_window(text, is_obfuscated(text, OBFUSCATION_MIN_CHARACTERS));
    }
    let mut analysis = Analysis {
        censored: String::with_capacity(text.len()),
        found: Type::NONE,
        obfuscated: false,
    };
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
        let window_analysis =
            censor_window(&window, is_obfuscated(&window, OBFUSCATION_MIN_CHARACTERS));
        if window_analysis.censored.chars().count() == end - start {
            analysis.censored.push_str(&window_analysis.censored);
        } else {
            analysis.censored.push_str(&window);
        }
        analysis.found |= window_analysis.found;
        analysis.obfuscated |= window_analysis.obfuscated;
        if end < chars.len() {
            let seam_end = (end + RUSTRICT_OVERLAP).min(chars.len());
            let seam_start = end.saturating_sub(RUSTRICT_OVERLAP).max(start);
            let seam: String = chars[seam_start..seam_end].iter().collect();
            // The seam is short: obfuscated when the window is, or when its
            // own share is.
            let seam_analysis = censor_window(
                &seam,
                window_analysis.obfuscated || is_obfuscated(&seam, RUSTRICT_OVERLAP),
            );
            analysis.found |= seam_analysis.found;
            analysis.obfuscated |= seam_analysis.obfuscated;
        }
        start = end;
    }
    analysis
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

/// Non-letters in a row that rustrict reads; a longer run becomes one space.
const MAX_SYMBOL_RUN: usize = 6;

/// The text with every run of more than [`MAX_SYMBOL_RUN`] characters that are
/// not letters (symbols, digits, spaces) replaced by one space; `None` when no
/// run is that long. rustrict skips such characters inside words ("f*ck",
/// "f . u . c . k"), and each of them keeps every partial match alive, so a
/// text of symbols cost it 350 ms; a word spread over more than six of them
/// in a row is still read with the run as one space.
fn cut_symbol_runs(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut run = String::new();
    let mut run_length = 0;
    let mut cut = false;
    let mut end_run = |out: &mut String, run: &mut String, run_length: &mut usize| {
        if *run_length > MAX_SYMBOL_RUN {
            out.push(' ');
            cut = true;
        } else {
            out.push_str(run);
        }
        run.clear();
        *run_length = 0;
    };
    for c in text.chars() {
        if c.is_alphabetic() {
            end_run(&mut out, &mut run, &mut run_length);
            out.push(c);
        } else {
            run.push(c);
            run_length += 1;
        }
    }
    end_run(&mut out, &mut run, &mut run_length);
    cut.then_some(out)
}

/// Letters in a row that rustrict may read as one letter repeated; longer runs
/// are cut to this length.
const MAX_LETTER_RUN: usize = 8;

/// The letters rustrict may read an ASCII character as (its
/// `replacements.csv`, rustrict 0.7: "x" may be c, e, i, u or x; "k" c or k;
/// "1" and "|" i or l; "*" any vowel), as a bit set over a–z; `None` for the
/// characters it reads as themselves or skips.
fn read_as(c: char) -> Option<u32> {
    let letters = |set: &str| set.bytes().fold(0, |bits, b| bits | 1 << (b - b'a'));
    Some(match c.to_ascii_lowercase() {
        'x' => letters("ceiux"),
        'k' => letters("ck"),
        'i' | 'l' | '1' => letters("il"),
        'j' => letters("ij"),
        'u' | 'v' => letters("uv"),
        'o' | '0' => letters("oq"),
        'z' | '2' => letters("sz"),
        '3' => letters("beg"),
        '4' => letters("a"),
        '5' => letters("s"),
        '6' => letters("bs"),
        '7' => letters("t"),
        '8' => letters("bh"),
        '9' => letters("gpq"),
        '!' | ')' | '/' | '[' | '\\' | ']' | '{' | '|' | '}' => letters("il"),
        '(' => letters("cil"),
        '<' => letters("cx"),
        '*' => letters("aeiou"),
        '#' => letters("ah"),
        '@' => letters("ag"),
        '^' => letters("an"),
        '$' => letters("s"),
        '&' => letters("a"),
        '+' => letters("t"),
        c if c.is_ascii_lowercase() => letters(c.encode_utf8(&mut [0; 4])),
        _ => return None,
    })
}

/// The text with every run of more than [`MAX_LETTER_RUN`] letters that
/// rustrict could read as one repeated letter ("xxxx", "x k x k", "l1l1",
/// ignoring what lies between them) cut to that many, together with what lies
/// between the cut letters; `None` when no run is that long. rustrict keeps a
/// partial match alive through every repetition, so 2,500 x's cost it 50 ms;
/// it reads "fuuuuuuck" as "fuck", so cutting the run hides nothing, and
/// "Sooooooo good" (eight o's) is left as it is.
fn cut_letter_runs(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut between = String::new();
    // The letters every character of the current run may be read as (or the
    // run's one non-ASCII letter).
    let mut common: Option<Result<u32, char>> = None;
    let mut run = 0;
    let mut cut = false;
    for c in text.chars() {
        let letters = read_as(c);
        if letters.is_none() && !c.is_alphanumeric() {
            between.push(c);
            continue;
        }
        let this = letters.ok_or_else(|| c.to_lowercase().next().unwrap_or(c));
        let continued = match (common, this) {
            (Some(Ok(run_letters)), Ok(letters)) if run_letters & letters != 0 => {
                Some(Ok(run_letters & letters))
            }
            (Some(Err(run_letter)), Err(letter)) if run_letter == letter => Some(Err(letter)),
            _ => None,
        };
        match continued {
            Some(narrowed) => {
                common = Some(narrowed);
                run += 1;
            }
            None => {
                common = Some(this);
                run = 1;
            }
        }
        if run > MAX_LETTER_RUN {
            between.clear();
            cut = true;
        } else {
            out.push_str(&between);
            between.clear();
            out.push(c);
        }
    }
    out.push_str(&between);
    cut.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_runs_of_one_letter_are_cut_whatever_separates_them() {
        assert_eq!(cut_letter_runs("Sooooooo good"), None);
        assert_eq!(
            cut_letter_runs("Sooooooooooo good").as_deref(),
            Some("Soooooooo good")
        );
        let cut = cut_letter_runs(&format!("{}then words", "x.".repeat(2500))).unwrap();
        assert_eq!(cut, "x.x.x.x.x.x.x.x.then words");
        let cut = cut_letter_runs(&"x-x X-x ".repeat(1250)).unwrap();
        assert_eq!(cut, "x-x X-x x-x X-x ");
        // Letters rustrict reads as one: x and k may both be "c".
        let cut = cut_letter_runs(&"xk ".repeat(1000)).unwrap();
        assert_eq!(cut, "xk xk xk xk ");
        assert_eq!(cut_letter_runs("Still illicit, I kill skills."), None);
    }

    #[test]
    fn long_runs_of_symbols_become_one_space() {
        assert_eq!(cut_symbol_runs("f*ck this!!! ok, 10 %"), None);
        assert_eq!(
            cut_symbol_runs("wow!!!!!!! 2024-11-28 ok").as_deref(),
            Some("wow ok")
        );
        assert_eq!(cut_symbol_runs(&"*(|!#@".repeat(800)).as_deref(), Some(" "));
    }

    #[test]
    fn swearing_is_still_found_after_cutting_and_joining() {
        for text in [
            format!("{} fuuuuuuuuuuuuuuck you", "x ".repeat(3000)),
            format!("{}f u c k y o u", "x ".repeat(100)),
            format!("{}f . . . u . . . c . . . k", "*(".repeat(1000)),
        ] {
            let analysis = censor_and_analyze(&text);
            assert!(analysis.found.is(Type::PROFANE), "{analysis:?}");
        }
    }
}
