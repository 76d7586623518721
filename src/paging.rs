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

/// Empty means "first page".
pub fn decode(token: &str, scope: &str) -> Result<Option<u64>, Error> {
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
        (Some("v1"), Some(token_scope), Some(last), None) if token_scope == scope => {
            u64::from_str_radix(last, 16)
                .map(Some)
                .map_err(|_| invalid())
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
        assert_eq!(decode(&token, "comments:news/1").unwrap(), Some(42));
        assert!(decode(&token, "comments:news/2").is_err());
        assert!(decode("garbage!", "comments:news/1").is_err());
        assert_eq!(decode("", "x").unwrap(), None);
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0), 50);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(1000), 200);
    }
}
