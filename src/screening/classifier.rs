//! Learned comment classifiers (spam, offensive language): a linear model
//! over hashed features, small enough to embed in the binary.
//!
//! Features: word unigrams and bigrams, character 3–5-grams, shape signals
//! (links and their domains, length, capitals, digits, mentions, video
//! timestamps) and, for the offensive model, rustrict's category × severity
//! findings. Weights are logistic-regression weights quantised to i8. The
//! models are trained by `commentd-train` (see `super::train`, feature `train`, and
//! `docs/FILTERS.md`) and embedded with `include_bytes!`.
//!
//! Model file format (little endian; docs/FILTERS.md):
//!   0  [4]  magic b"CFM2" (format 2: features read the normalised text of
//!           [`super::normalize`]; format 1 files are refused, retrain them)
//!   4  u8   hash_bits (buckets = 1 << hash_bits, 10..=24)
//!   5  u8   flags (bit0 = rustrict features, bit1 = content words only)
//!   6  u16  reserved (0)
//!   8  f32  bias
//!  12  f32  scale (weight = i8 * scale)
//!  16  f32  threshold (on the probability returned by `score`)
//!  20  u32  n = number of non-zero weights
//!  24  n x { varint gap (LEB128, index delta from previous non-zero, first from 0), i8 weight }

use std::{cell::OnceCell, collections::HashSet, sync::LazyLock};

use rustrict::Type;

use super::normalize::{Normalized, Piece};

pub const FLAG_RUSTRICT: u8 = 1;
/// Words and character n-grams skip function words ("what", "are", "be"):
/// a model whose clean and positive examples come from different kinds of
/// text would otherwise learn their style rather than their content.
pub const FLAG_CONTENT_WORDS: u8 = 2;
const MAGIC: &[u8; 4] = b"CFM2";
/// Earlier formats, recognised only to say why they are refused.
const OLD_MAGICS: [&[u8; 4]; 1] = [b"CFM1"];

/// A model file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{context}{message}")]
pub struct ModelError {
    context: String,
    message: String,
}

impl ModelError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            context: String::new(),
            message: message.into(),
        }
    }

    /// The same error, saying which model it is about.
    pub fn context(mut self, what: &str) -> Self {
        self.context = format!("{what}: {}", self.context);
        self
    }
}

/// The spam model shipped in the binary (trained on the YouTube Spam
/// Collection; see docs/FILTERS.md).
pub const SPAM_MODEL: &[u8] = include_bytes!("models/spam.bin");
/// The offensive-language model shipped in the binary (trained on Davidson
/// et al. 2017; see docs/FILTERS.md).
pub const OFFENSIVE_MODEL: &[u8] = include_bytes!("models/offensive.bin");
/// The news-comment toxicity model shipped in the binary (insults, attacks
/// and threats without swear words; trained on Civil Comments posts against
/// clean news text; see docs/FILTERS.md).
pub const TOXICITY_MODEL: &[u8] = include_bytes!("models/toxicity.bin");

#[derive(Clone)]
pub struct Model {
    pub hash_bits: u8,
    pub flags: u8,
    pub bias: f32,
    pub scale: f32,
    pub threshold: f32,
    pub weights: Vec<i8>,
}

impl Model {
    pub fn from_bytes(b: &[u8]) -> Result<Model, ModelError> {
        if b.len() >= 4 && OLD_MAGICS.iter().any(|old| &b[0..4] == *old) {
            return Err(ModelError::new(format!(
                "model file format {} is no longer supported (this build reads {}); \
                 retrain it with commentd-train (docs/FILTERS.md)",
                String::from_utf8_lossy(&b[0..4]),
                String::from_utf8_lossy(MAGIC)
            )));
        }
        if b.len() < 24 || &b[0..4] != MAGIC {
            return Err(ModelError::new(
                "not a commentd model file (bad magic or too short)",
            ));
        }
        let hash_bits = b[4];
        if !(10..=24).contains(&hash_bits) {
            return Err(ModelError::new(format!("bad hash_bits {hash_bits}")));
        }
        let flags = b[5];
        let f = |o: usize| f32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let (bias, scale, threshold) = (f(8), f(12), f(16));
        let n = u32::from_le_bytes([b[20], b[21], b[22], b[23]]) as usize;
        Ok(Model {
            hash_bits,
            flags,
            bias,
            scale,
            threshold,
            weights: decode_weights(&b[24..], n, 1usize << hash_bits).map_err(ModelError::new)?,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[self.hash_bits, self.flags, 0, 0]);
        for v in [self.bias, self.scale, self.threshold] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let nz = self.weights.iter().filter(|&&w| w != 0).count() as u32;
        out.extend_from_slice(&nz.to_le_bytes());
        let mut prev = 0usize;
        for (i, &w) in self.weights.iter().enumerate() {
            if w == 0 {
                continue;
            }
            let mut gap = i - prev;
            prev = i;
            loop {
                let byte = (gap & 0x7f) as u8;
                gap >>= 7;
                if gap == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
            out.push(w as u8);
        }
        out
    }

    /// Quantise float weights to i8 (symmetric, scale = max|w| / 127).
    pub fn quantise(hash_bits: u8, flags: u8, bias: f32, threshold: f32, w: &[f32]) -> Model {
        let maxw = w.iter().fold(0f32, |m, &x| m.max(x.abs())).max(1e-9);
        let scale = maxw / 127.0;
        let weights = w
            .iter()
            .map(|&x| (x / scale).round().clamp(-127.0, 127.0) as i8)
            .collect();
        Model {
            hash_bits,
            flags,
            bias,
            scale,
            threshold,
            weights,
        }
    }

    /// Linear margin for already-extracted features.
    pub fn margin_features(&self, feats: &[(u32, f32)]) -> f32 {
        self.margin(feats.iter().copied())
    }

    /// Linear margin of (bucket, value) pairs, summed in their order (a
    /// fold, so that chained slices are summed as plain loops).
    fn margin(&self, features: impl Iterator<Item = (u32, f32)>) -> f32 {
        let s = features.fold(0f32, |s, (bucket, value)| {
            s + self.weights[bucket as usize] as f32 * value
        });
        self.bias + s * self.scale
    }

    /// Probability-like score in [0, 1]; compare with `self.threshold`.
    pub fn score(&self, text: &Normalized) -> f32 {
        self.score_features(&TextFeatures::new(text, None))
    }

    /// `score` of a text whose features are already extracted (and shared
    /// with the other models).
    pub fn score_features(&self, features: &TextFeatures<'_>) -> f32 {
        sigmoid(self.margin(features.buckets(self.flags, self.hash_bits)))
    }

    pub fn is_flagged(&self, text: &Normalized) -> bool {
        self.score(text) >= self.threshold
    }

    /// The words of `text` that pushed its score up most, strongest first
    /// (at most `limit`), for a human-readable reason.
    pub fn top_words(&self, text: &Normalized, limit: usize) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut scored: Vec<(f32, String)> = text
            .language_only()
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .filter(|w| !w.is_empty())
            .map(|w| w.replace('\'', "").to_lowercase())
            .filter(|w| seen.insert(w.clone()))
            // A word the model does not read cannot have weighed.
            .filter(|w| self.flags & FLAG_CONTENT_WORDS == 0 || !is_function_word(w))
            .map(|w| {
                let weight = f32::from(self.weights[word_index(&w, self.hash_bits) as usize]);
                (weight, w)
            })
            .filter(|(weight, _)| *weight > 0.0)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(limit).map(|(_, w)| w).collect()
    }

    /// [`Self::top_words`] (three) as a phrase for a reason's message.
    pub fn strongest_words(&self, text: &Normalized) -> String {
        let words = self.top_words(text, 3);
        if words.is_empty() {
            "none in particular".to_owned()
        } else {
            words.join(", ")
        }
    }
}

/// The sparse weight list of a model file (everything after the header):
/// `n` entries of { varint gap, i8 weight }, into `size` dense weights.
fn decode_weights(b: &[u8], n: usize, size: usize) -> Result<Vec<i8>, String> {
    let mut weights = vec![0i8; size];
    let (mut p, mut idx) = (0usize, 0usize);
    for k in 0..n {
        let (mut gap, mut shift) = (0usize, 0u32);
        loop {
            let byte = *b.get(p).ok_or("truncated")?;
            p += 1;
            gap |= ((byte & 0x7f) as usize) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
            if shift > 28 {
                return Err("bad varint".into());
            }
        }
        idx += gap;
        if idx >= size || (k > 0 && gap == 0) {
            return Err("bad index".into());
        }
        weights[idx] = *b.get(p).ok_or("truncated")? as i8;
        p += 1;
    }
    if p != b.len() {
        return Err("trailing bytes".into());
    }
    Ok(weights)
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("hash_bits", &self.hash_bits)
            .field("flags", &self.flags)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

// ---------------------------------------------------------------- hashing
const FNV_OFF: u64 = 0xcbf29ce484222325;
const FNV_PRIME: u64 = 0x100000001b3;

#[inline]
fn h_bytes(mut h: u64, s: &[u8]) -> u64 {
    for &c in s {
        h = (h ^ c as u64).wrapping_mul(FNV_PRIME);
    }
    h
}

/// A feature's full 32-bit hash; a model keeps its low `hash_bits` bits
/// (its bucket), so one extraction serves models of any size.
#[inline]
fn finish(h: u64) -> u32 {
    let mut x = h;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x as u32
}

#[inline]
fn ns(tag: u8) -> u64 {
    (FNV_OFF ^ tag as u64).wrapping_mul(FNV_PRIME)
}

/// Bucket mask of a model with `hash_bits` bits.
#[inline]
fn bucket_mask(hash_bits: u8) -> u32 {
    ((1u64 << hash_bits) - 1) as u32
}

/// Hash state of shape signal `name` at level `b` (namespace `s`).
#[inline]
fn h_signal(name: &[u8], b: u8) -> u64 {
    (h_bytes(ns(b's'), name) ^ b as u64).wrapping_mul(FNV_PRIME)
}

// ---------------------------------------------------------------- features

/// A lowercased link without its scheme and "www." prefix.
fn strip_scheme(lower: &str) -> &str {
    lower
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_start_matches("www.")
}

fn url_domain(link: &str) -> String {
    let lower = link.to_ascii_lowercase();
    let rest = strip_scheme(&lower);
    let end = rest
        .find(['/', '?', '#', ')', ']', '"', ':'])
        .unwrap_or(rest.len());
    rest[..end].trim_end_matches(['.', ',', '!']).to_string()
}

/// "3:40", "1:02:33" (video time references), surrounding punctuation allowed.
fn is_timestamp(tok: &str) -> bool {
    let t = tok.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut parts = 0;
    for (k, p) in t.split(':').enumerate() {
        if p.is_empty()
            || p.len() > 2
            || !p.bytes().all(|c| c.is_ascii_digit())
            || (k > 0 && p.len() != 2)
        {
            return false;
        }
        parts += 1;
    }
    (2..=3).contains(&parts)
}

/// The registrable part of a domain (its last two labels), if it has two.
fn registrable(dom: &str) -> Option<String> {
    let parts: Vec<&str> = dom.rsplitn(3, '.').collect();
    (parts.len() >= 2).then(|| format!("{}.{}", parts[1], parts[0]))
}

/// Gives every feature of one namespace the value `scale / sqrt(count)`.
fn normalise(feats: &mut [Feature], scale: f32) {
    let n = feats.len().max(1) as f32;
    let v = scale / n.sqrt();
    for f in feats {
        f.1 = v;
    }
}

fn bucket(x: usize, bounds: &[usize]) -> u8 {
    bounds.iter().position(|&b| x < b).unwrap_or(bounds.len()) as u8
}

/// Namespace scales (tuned by cross-validation): words, character n-grams,
/// shape and rustrict signals.
const WORD_SCALE: f32 = 1.0;
const CHAR_SCALE: f32 = 1.5;
const SIGNAL_SCALE: f32 = 0.5;
/// Character n-grams are read from at most this many bytes of words, so a
/// long text costs what a long comment costs.
const MAX_NGRAM_BYTES: usize = 4096;

/// Counts of the text's shape, gathered while its words are read.
#[derive(Default)]
struct Shape {
    links: usize,
    mentions: usize,
    exclamations: usize,
    questions: usize,
    letters: usize,
    capitals: usize,
    digit_runs: usize,
    non_ascii: usize,
    timestamps: usize,
}

/// A feature: its full hash ([`finish`]) and its value.
pub type Feature = (u32, f32);

/// One text's features, extracted once and read by every model: links,
/// shape and rustrict's findings are the same for all of them, and the
/// word and character n-gram features come in two versions (all words, or
/// content words only with [`FLAG_CONTENT_WORDS`]), each built the first
/// time a model asks for it. A model keeps the bits of each hash its size
/// needs ([`Model::score_features`]); the sum runs in the order
/// [`extract`] writes, so the scores are those of separate extractions.
pub struct TextFeatures<'a> {
    text: &'a Normalized,
    rustrict: Option<Type>,
    /// The text's words as " w1 w2 ... ", links and mentions as tokens.
    words: String,
    links: Vec<Feature>,
    shape: Vec<Feature>,
    all_words: OnceCell<Vec<Feature>>,
    content_words: OnceCell<Vec<Feature>>,
    rustrict_findings: OnceCell<Vec<Feature>>,
}

impl<'a> TextFeatures<'a> {
    /// With `FLAG_RUSTRICT`, rustrict's analysis of the text is a feature:
    /// pass it as `rustrict` when the caller already has it (the pipeline
    /// does), or `None` to have it computed the same way
    /// ([`super::screening_type`]) when a model first needs it.
    pub fn new(text: &'a Normalized, rustrict: Option<Type>) -> Self {
        let mut shape = Shape::default();
        let mut links = Vec::new();
        let mut words = String::with_capacity(text.text().len() + 2);
        words.push(' ');
        for piece in text.pieces() {
            match piece {
                // Sources people cite (government, universities, reference
                // works) are discussion, not promotion: a word of their own
                // and no link signals.
                Piece::Link(link) if is_reference_link(link) => words.push_str("xrefx "),
                Piece::Link(link) => {
                    shape.links += 1;
                    link_features(link, &mut links);
                    words.push_str("xurlx ");
                }
                Piece::Mention(_) => {
                    shape.mentions += 1;
                    words.push_str("xatx ");
                }
                Piece::Text(plain) => read_words(plain, &mut words, &mut shape),
            }
        }
        let mut shape_signals = Vec::with_capacity(9);
        shape_features(text.text(), &shape, &mut shape_signals);
        Self {
            text,
            rustrict,
            words,
            links,
            shape: shape_signals,
            all_words: OnceCell::new(),
            content_words: OnceCell::new(),
            rustrict_findings: OnceCell::new(),
        }
    }

    /// The features a model with `flags` reads, as slices in extraction order.
    fn parts(&self, flags: u8) -> [&[Feature]; 4] {
        let words = if flags & FLAG_CONTENT_WORDS != 0 {
            self.content_words
                .get_or_init(|| word_and_char_features(&content_words(&self.words)))
        } else {
            self.all_words
                .get_or_init(|| word_and_char_features(&self.words))
        };
        let rustrict: &[Feature] = if flags & FLAG_RUSTRICT != 0 {
            self.rustrict_findings.get_or_init(|| {
                let analysis = self
                    .rustrict
                    .unwrap_or_else(|| super::screening_type(self.text));
                let mut out = Vec::with_capacity(8);
                rustrict_features(analysis, &mut out);
                out
            })
        } else {
            &[]
        };
        [&self.links, words, &self.shape, rustrict]
    }

    /// The features a model with `flags` and `hash_bits` reads, as
    /// (bucket, value) pairs in extraction order (duplicates allowed; they
    /// add up).
    fn buckets(&self, flags: u8, hash_bits: u8) -> impl Iterator<Item = (u32, f32)> + '_ {
        let mask = bucket_mask(hash_bits);
        self.parts(flags)
            .into_iter()
            .flatten()
            .map(move |&(hash, value)| (hash & mask, value))
    }

    /// Appends [`Self::buckets`] to `out`.
    pub fn write(&self, flags: u8, hash_bits: u8, out: &mut Vec<(u32, f32)>) {
        out.extend(self.buckets(flags, hash_bits));
    }
}

/// Feature extraction shared by training and inference: appends (bucket
/// index, value) pairs to `out` ([`TextFeatures::write`]).
pub fn extract(
    text: &Normalized,
    flags: u8,
    hash_bits: u8,
    rustrict: Option<Type>,
    out: &mut Vec<(u32, f32)>,
) {
    TextFeatures::new(text, rustrict).write(flags, hash_bits, out);
}

/// Word unigrams and bigrams, then character n-grams, of " w1 w2 ... ".
fn word_and_char_features(words: &str) -> Vec<Feature> {
    let mut out = Vec::with_capacity(2 * words.len() + 3 * words.len().min(MAX_NGRAM_BYTES));
    word_features(words, &mut out);
    char_ngram_features(words, &mut out);
    out
}

/// English function words and mild swear words, skipped with
/// [`FLAG_CONTENT_WORDS`].
const FUNCTION_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "let",
    "lets",
    "may",
    "me",
    "might",
    "more",
    "most",
    "much",
    "must",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "thats",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "us",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "im",
    "ive",
    "id",
    "ill",
    "youre",
    "youve",
    "hes",
    "shes",
    "theyre",
    "dont",
    "doesnt",
    "didnt",
    "isnt",
    "arent",
    "wasnt",
    "werent",
    "wont",
    "cant",
    "couldnt",
    "shouldnt",
    "wouldnt",
    "thing",
    "things",
    "get",
    "got",
    "make",
    "made",
    "see",
    "say",
    "said",
    "know",
    "think",
    "people",
    "way",
    "well",
    "still",
    "really",
    "many",
    // Mild swearing is the profanity filter's call (approved by default).
    "damn",
    "damned",
    "dammit",
    "hell",
    "crap",
    "crappy",
    "heck",
    "darn",
    "bloody",
    "sucks",
];

fn is_function_word(word: &str) -> bool {
    static SET: LazyLock<HashSet<&str>> =
        LazyLock::new(|| FUNCTION_WORDS.iter().copied().collect());
    SET.contains(word)
}

/// `words` (" w1 w2 ... ") without function words.
fn content_words(words: &str) -> String {
    let mut kept = String::with_capacity(words.len());
    kept.push(' ');
    for word in words.split_ascii_whitespace() {
        if !is_function_word(word) {
            kept.push_str(word);
            kept.push(' ');
        }
    }
    kept
}

/// A link to a source people cite rather than sell: a government,
/// university, military or international body's domain, or Wikipedia.
fn is_reference_link(link: &str) -> bool {
    let domain = url_domain(link);
    let labels: Vec<&str> = domain.rsplit('.').collect();
    let institutional = |label: &str| matches!(label, "gov" | "edu" | "mil" | "int" | "gc" | "ac");
    match labels.as_slice() {
        [tld, ..] if institutional(tld) => true,
        // gov.uk, gc.ca, ac.nz, edu.au
        [tld, second, ..] if tld.len() == 2 && institutional(second) => true,
        [_, name, ..] => *name == "wikipedia",
        _ => false,
    }
}

/// A link's domain, registrable domain, first path segment and query keys
/// ("youtube.com/watch", "q:t").
fn link_features(link: &str, out: &mut Vec<Feature>) {
    let mut push = |h: u64| out.push((finish(h), 1.0));
    let domain = url_domain(link);
    push(h_bytes(ns(b'd'), domain.as_bytes()));
    let reg = registrable(&domain);
    if let Some(reg) = &reg {
        push(h_bytes(ns(b'D'), reg.as_bytes()));
    }
    let lower = link.to_ascii_lowercase();
    let rest = strip_scheme(&lower);
    match rest.find('/') {
        Some(p) => {
            let path = &rest[p + 1..];
            let seg_end = path.find(['/', '?', '#', '&']).unwrap_or(path.len());
            let seg = &path[..seg_end];
            let seg = if seg.len() > 12 { "long" } else { seg };
            let reg = reg.as_deref().unwrap_or(&domain);
            push(h_bytes(h_bytes(ns(b'p'), reg.as_bytes()), seg.as_bytes()));
            for kv in path.split(['?', '&', '#']).skip(1) {
                let key = kv.split('=').next().unwrap_or("");
                if !key.is_empty() && key.len() < 10 {
                    push(h_bytes(ns(b'q'), key.as_bytes()));
                }
            }
        }
        None => push(h_bytes(ns(b'p'), b"<root>")),
    }
}

/// Appends the lowercase words of `plain` to `words` (apostrophes dropped,
/// letters repeated more than twice collapsed, plain numbers as a length
/// token) and counts its shape.
fn read_words(plain: &str, words: &mut String, shape: &mut Shape) {
    for tok in plain.split_whitespace() {
        if is_timestamp(tok) {
            shape.timestamps += 1;
        }
        let mut prev_digit = false;
        let mut in_word = false;
        let (mut last, mut rep) = ('\0', 0u8);
        let mut all_digits = true;
        let mut wstart = words.len();
        for ch in tok.chars() {
            if ch == '!' {
                shape.exclamations += 1;
            } else if ch == '?' {
                shape.questions += 1;
            }
            if !ch.is_ascii() {
                shape.non_ascii += 1;
            }
            let d = ch.is_ascii_digit();
            if d && !prev_digit {
                shape.digit_runs += 1;
            }
            prev_digit = d;
            if ch == '\'' || ch == '\u{2019}' {
                continue;
            }
            if ch.is_alphanumeric() {
                if ch.is_alphabetic() {
                    shape.letters += 1;
                    if ch.is_uppercase() {
                        shape.capitals += 1;
                    }
                }
                if !in_word {
                    in_word = true;
                    wstart = words.len();
                    all_digits = true;
                    last = '\0';
                    rep = 0;
                }
                for lc in ch.to_lowercase() {
                    if lc == last {
                        rep = rep.saturating_add(1);
                        if rep >= 2 {
                            continue;
                        }
                    } else {
                        last = lc;
                        rep = 0;
                    }
                    if !lc.is_ascii_digit() {
                        all_digits = false;
                    }
                    words.push(lc);
                }
            } else if in_word {
                in_word = false;
                finish_word(words, wstart, all_digits);
            }
        }
        if in_word {
            finish_word(words, wstart, all_digits);
        }
    }
}

/// Word unigrams and bigrams.
fn word_features(words: &str, out: &mut Vec<Feature>) {
    let w_ns = ns(b'w');
    let b_ns = ns(b'b');
    let start = out.len();
    let mut prev: Option<&str> = None;
    for w in words.split_ascii_whitespace() {
        out.push((finish(h_bytes(w_ns, w.as_bytes())), 1.0));
        let h = match prev {
            Some(p) => h_bytes(h_bytes(b_ns, p.as_bytes()), w.as_bytes()),
            None => h_bytes(h_bytes(b_ns, b"^"), w.as_bytes()),
        };
        out.push((finish(h), 1.0));
        prev = Some(w);
    }
    normalise(&mut out[start..], WORD_SCALE);
}

/// Character 3–5-grams over " w1 w2 ... " (bytes), from the first
/// [`MAX_NGRAM_BYTES`].
fn char_ngram_features(words: &str, out: &mut Vec<Feature>) {
    let c_ns = ns(b'c');
    let start = out.len();
    let wb = &words.as_bytes()[..words.len().min(MAX_NGRAM_BYTES)];
    let collapsed: &[u8] = if wb.len() > 1 { wb } else { b"  " };
    for i in 0..collapsed.len() {
        let mut h = c_ns;
        for k in 0..5 {
            if i + k >= collapsed.len() {
                break;
            }
            h = (h ^ collapsed[i + k] as u64).wrapping_mul(FNV_PRIME);
            if k >= 2 {
                out.push((finish(h ^ k as u64), 1.0));
            }
        }
    }
    normalise(&mut out[start..], CHAR_SCALE);
}

/// Length, capitals, links, mentions, punctuation, digits, other scripts.
fn shape_features(text: &str, shape: &Shape, out: &mut Vec<Feature>) {
    let mut sig = |name: &[u8], b: u8| out.push((finish(h_signal(name, b)), SIGNAL_SCALE));
    sig(
        b"len",
        bucket(text.trim().len(), &[16, 32, 64, 128, 256, 512]),
    );
    if shape.letters >= 4 {
        sig(
            b"caps",
            bucket(shape.capitals * 100 / shape.letters, &[5, 15, 35, 70]),
        );
    }
    sig(b"url", shape.links.min(2) as u8);
    sig(b"ment", shape.mentions.min(2) as u8);
    sig(b"excl", bucket(shape.exclamations, &[1, 2, 4]));
    sig(b"q", shape.questions.min(2) as u8);
    if shape.timestamps > 0 {
        sig(b"ts", 1);
    }
    sig(b"digr", bucket(shape.digit_runs, &[1, 2, 4]));
    if shape.non_ascii > 0 {
        sig(b"nonascii", bucket(shape.non_ascii, &[2, 6]));
    }
}

/// rustrict's category × severity findings.
fn rustrict_features(analysis: Type, out: &mut Vec<Feature>) {
    let r_ns = ns(b'r');
    let cats = [
        Type::PROFANE,
        Type::OFFENSIVE,
        Type::SEXUAL,
        Type::MEAN,
        Type::EVASIVE,
    ];
    let sevs = [Type::MILD, Type::MODERATE, Type::SEVERE];
    let mut rsig = |a: u8, b: u8| out.push((finish(h_bytes(r_ns, &[a, b])), 1.0));
    let mut any = false;
    for (ci, &c) in cats.iter().enumerate() {
        for (si, &s) in sevs.iter().enumerate() {
            if analysis.is(c & s) {
                rsig(ci as u8, si as u8);
                any = true;
            }
        }
    }
    if analysis.is(Type::INAPPROPRIATE) {
        rsig(b'I', 0);
    }
    if !any {
        rsig(b'N', 0);
    }
    if analysis.is(Type::SAFE) {
        rsig(b'S', 0);
    }
    if analysis.is(Type::SPAM) {
        rsig(b'P', 0);
    }
}

/// Terminates the word started at `wstart`; plain numbers become a shape token.
fn finish_word(words: &mut String, wstart: usize, all_digits: bool) {
    if all_digits {
        let len = words.len() - wstart;
        words.truncate(wstart);
        words.push_str(match len {
            1 => "xd1x",
            2 => "xd2x",
            3 | 4 => "xd4x",
            _ => "xd5x",
        });
    }
    words.push(' ');
}

/// Debug helpers (feature inspection): bucket of a word unigram, a shape signal, a rustrict flag.
pub fn word_index(word: &str, hash_bits: u8) -> u32 {
    finish(h_bytes(ns(b'w'), word.as_bytes())) & bucket_mask(hash_bits)
}
pub fn signal_index(name: &str, b: u8, hash_bits: u8) -> u32 {
    finish(h_signal(name.as_bytes(), b)) & bucket_mask(hash_bits)
}
pub fn rustrict_index(a: u8, b: u8, hash_bits: u8) -> u32 {
    finish(h_bytes(ns(b'r'), &[a, b])) & bucket_mask(hash_bits)
}
pub fn domain_index(reg_domain: &str, hash_bits: u8) -> u32 {
    finish(h_bytes(ns(b'D'), reg_domain.as_bytes())) & bucket_mask(hash_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded models, by name.
    fn embedded() -> [(&'static str, Model); 3] {
        [
            ("spam", SPAM_MODEL),
            ("offensive", OFFENSIVE_MODEL),
            ("toxicity", TOXICITY_MODEL),
        ]
        .map(|(name, bytes)| {
            let model = Model::from_bytes(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, model)
        })
    }

    #[test]
    fn embedded_models_load_and_round_trip() {
        let [(_, spam), (_, offensive), (_, toxicity)] = embedded();
        assert_eq!(spam.flags, 0);
        assert_eq!(offensive.flags, FLAG_RUSTRICT);
        assert_eq!(toxicity.flags, FLAG_RUSTRICT | FLAG_CONTENT_WORDS);
        for (model, bytes) in [
            (&spam, SPAM_MODEL),
            (&offensive, OFFENSIVE_MODEL),
            (&toxicity, TOXICITY_MODEL),
        ] {
            assert_eq!(model.weights.len(), 1 << model.hash_bits);
            assert!(model.threshold > 0.0 && model.threshold < 1.0, "{model:?}");
            assert_eq!(model.to_bytes(), bytes);
        }
    }

    #[test]
    fn shared_features_score_exactly_as_one_extraction_per_model() {
        let texts = [
            "The council's decision to delay the bus lane makes sense to me.",
            "Check out my channel http://example.com/watch?v=abc and subscribe!!!",
            "@maria_k you stupid idiot, nobody asked for your opinion 3:40",
            "Source: https://www.ons.gov.uk/economy and en.wikipedia.org/wiki/Tax",
            "ЅUBЅCRIBE to my channel for FREE iPhones 100000",
            "",
        ];
        let models = embedded();
        for text in texts {
            let normalized = Normalized::new(text);
            let rustrict = crate::screening::screening_type(&normalized);
            let shared = TextFeatures::new(&normalized, Some(rustrict));
            for (name, model) in &models {
                let mut own = Vec::new();
                extract(&normalized, model.flags, model.hash_bits, None, &mut own);
                let alone = sigmoid(model.margin_features(&own));
                assert_eq!(
                    model.score_features(&shared).to_bits(),
                    alone.to_bits(),
                    "{name} on {text:?}"
                );
            }
        }
    }

    #[test]
    fn a_model_file_of_the_old_format_is_refused_with_a_clear_error() {
        let mut old = SPAM_MODEL.to_vec();
        old[..4].copy_from_slice(b"CFM1");
        let error = Model::from_bytes(&old).unwrap_err().context("spam model");
        let message = error.to_string();
        assert!(message.starts_with("spam model: "), "{message}");
        assert!(message.contains("CFM1 is no longer supported"), "{message}");
        assert!(message.contains("retrain"), "{message}");
    }

    #[test]
    fn reference_links_are_told_from_other_links() {
        for link in [
            "https://www.bls.gov/cpi.htm",
            "census.gov",
            "https://www.gov.uk/x",
            "https://www150.statcan.gc.ca/n1/",
            "http://www.ox.ac.uk",
            "https://en.wikipedia.org/wiki/Vote",
        ] {
            assert!(is_reference_link(link), "{link}");
        }
        for link in [
            "http://bit.ly/x",
            "www.example.org",
            "youtube.com/channel/x",
            "gov.example.com",
        ] {
            assert!(!is_reference_link(link), "{link}");
        }
    }

    #[test]
    fn truncated_or_garbage_bytes_are_errors() {
        for bytes in [SPAM_MODEL, OFFENSIVE_MODEL, TOXICITY_MODEL] {
            // Proper prefixes: too short, or cut inside a varint or weight.
            let spread = (24..bytes.len()).step_by(bytes.len() / 64);
            for len in (0..40).chain(spread).chain([bytes.len() - 1]) {
                assert!(Model::from_bytes(&bytes[..len]).is_err(), "prefix {len}");
            }
            let mut trailing = bytes.to_vec();
            trailing.push(0);
            assert!(Model::from_bytes(&trailing).is_err());
            let mut bad_magic = bytes.to_vec();
            bad_magic[0] = b'X';
            assert!(Model::from_bytes(&bad_magic).is_err());
            for bits in [0, 9, 25, 255] {
                let mut bad_bits = bytes.to_vec();
                bad_bits[4] = bits;
                assert!(Model::from_bytes(&bad_bits).is_err(), "hash_bits {bits}");
            }
            let mut too_many = bytes.to_vec();
            too_many[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
            assert!(Model::from_bytes(&too_many).is_err());
        }
        let header = |n: u32, rest: &[u8]| {
            let mut b = b"CFM2\x0a\x00\x00\x00".to_vec();
            for v in [0f32, 1.0, 0.5] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&n.to_le_bytes());
            b.extend_from_slice(rest);
            b
        };
        assert!(Model::from_bytes(&header(0, &[])).is_ok());
        // A varint that never ends, an index past the buckets, a repeated index.
        assert!(Model::from_bytes(&header(1, &[0xff; 16])).is_err());
        assert!(Model::from_bytes(&header(1, &[0x80, 0x08, 1])).is_err());
        assert!(Model::from_bytes(&header(2, &[3, 1, 0, 1])).is_err());
        // Pseudo-random garbage, with and without a valid magic.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for len in [0, 1, 23, 24, 25, 100, 1000] {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            assert!(Model::from_bytes(&garbage).is_err(), "{len} bytes");
            let mut magic = b"CFM2\x12".to_vec();
            magic.extend_from_slice(&garbage);
            // Must not panic; garbage almost never forms a valid model.
            let _ = Model::from_bytes(&magic);
        }
    }

    #[test]
    fn odd_inputs_score_finite_probabilities_without_panicking() {
        let long_word = "a".repeat(50_000);
        let long_link = format!("http://{}.com/{}", "x".repeat(3000), "y".repeat(3000));
        let many_tags = "<a".repeat(10_000);
        let many_closed = "<b>".repeat(5_000);
        let many_entities = "&#".repeat(10_000);
        let controls: String = (0u8..32).map(char::from).collect();
        let inputs: Vec<&str> = vec![
            "",
            " ",
            "\t\n\r",
            "\u{feff}\u{200b}",
            "<",
            ">",
            "&",
            ";",
            "<a href=",
            "<a href=\"",
            "<a href='http://x.com",
            "<a href=http://x.com>link</a>",
            "&#",
            "&#;",
            "&#99999999;",
            "&#x;",
            "&#xD800;",
            "&#55296;",
            "&#x110000;",
            "&#-1;",
            "&amp",
            "&nbsp;&lt;&gt;&quot;&apos;&amp;",
            "<unterminated tag with words",
            "text <b>bold <i>unterminated",
            "<<<<>>>>",
            &many_tags,
            &many_closed,
            &many_entities,
            "😀🔥💯 👍🏽 👨‍👩‍👧",
            "مرحبا بالعالم، هذا تعليق",
            "שלום עולם \u{202e}reversed\u{202c}",
            "e\u{301}\u{302}\u{303}\u{304} Z\u{336}\u{337}\u{338}",
            "\u{301}\u{301}\u{301}",
            "nul\0inside\0",
            "\0",
            &controls,
            "\u{7f}\u{80}\u{9f}",
            &long_word,
            &long_link,
            "http://",
            "https://www.",
            "www.",
            ".com",
            "a.com/?&=#",
            "@",
            "@@@@",
            "1:2:3:4",
            ":::",
            "9999999999999999999999",
            "!!!???",
            "ǅ İ ß ﬁ ΐ",
            "\u{10ffff}\u{e000}",
        ];
        for (name, model) in embedded() {
            for text in &inputs {
                let text = &Normalized::new(text);
                let score = model.score(text);
                assert!(
                    score.is_finite() && (0.0..=1.0).contains(&score),
                    "{name}: {score} for {:?}",
                    text.text().chars().take(40).collect::<String>()
                );
                let _ = model.is_flagged(text);
                let _ = model.top_words(text, 3);
            }
        }
    }
}
