//! Opaque page tokens: the scope of the list and the last position served.
//!
//! A token only works for the list it came from (same scope), so a token
//! from one article's list is refused for another's.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{domain::FieldViolation, error::Error};

/// Default and largest page sizes.
pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 200;

/// 0 means the default; larger than the maximum is capped.
pub fn page_size(requested: usize) -> usize {
    match requested {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

pub fn encode(scope: &str, last: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1\n{scope}\n{last:016x}"))
}

/// Empty means "first page". A token is refused unless it is exactly what
/// [`encode`] wrote for this scope, with a position no later than `last`
/// (the log's last position): a truncated or forged token never silently
/// restarts the list.
pub fn decode(token: &str, scope: &str, last: u64) -> Result<Option<u64>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        Error::from(FieldViolation::new(
            "page_token",
            "is not a page token of this list",
        ))
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split('\n');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some(token_scope), Some(digits), None)
            if token_scope == scope
                && digits.len() == 16
                && digits
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            u64::from_str_radix(digits, 16)
                .ok()
                .filter(|position| *position <= last)
                .map(Some)
                .ok_or_else(invalid)
        }
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_within_its_scope_only() {
        let token = encode("comments:news/1", 42);
        assert_eq!(decode(&token, "comments:news/1", 42).unwrap(), Some(42));
        assert!(decode(&token, "comments:news/2", 42).is_err());
        assert!(decode("garbage!", "comments:news/1", 42).is_err());
        assert_eq!(decode("", "x", 0).unwrap(), None);
    }

    #[test]
    fn truncated_forged_and_future_tokens_are_refused() {
        let token = encode("comments:a", 42);
        for cut in 1..token.len() {
            assert!(
                decode(&token[..cut], "comments:a", 42).is_err(),
                "{}",
                &token[..cut]
            );
        }
        // A position past the end of the log (u64::MAX would wrap to 0).
        assert!(decode(&encode("comments:a", u64::MAX), "comments:a", 42).is_err());
        assert!(decode(&encode("comments:a", 43), "comments:a", 42).is_err());
        let short = URL_SAFE_NO_PAD.encode("v1\ncomments:a\n2a");
        assert!(decode(&short, "comments:a", 42).is_err());
        let upper = URL_SAFE_NO_PAD.encode("v1\ncomments:a\n000000000000002A");
        assert!(decode(&upper, "comments:a", 42).is_err());
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0), 50);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(1000), 200);
    }
}
