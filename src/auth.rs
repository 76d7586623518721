//! Moderator authentication: bearer tokens from a file.
//!
//! The file has one `name:token` per line (`#` comments and blank lines
//! are ignored). The name is what the audit log records; tokens are never
//! logged. Every token is compared in constant time, and all of them are
//! always compared, so timing tells nothing about which one nearly matched.
//!
//! A failed attempt is logged with the caller's address (never the token)
//! and counts against that address: past the limit, its attempts are
//! refused with RESOURCE_EXHAUSTED before any token is compared, so tokens
//! cannot be guessed at speed.

use std::{net::IpAddr, path::Path, sync::Arc};

use anyhow::{Context, bail};
use subtle::ConstantTimeEq;
use tonic::{Request, Status, service::Interceptor};

use crate::{
    error::Error,
    metrics::Metrics,
    peer::{self, TrustedProxies},
    screening::rate_limit::{RateLimiter, RatePolicy},
};

/// The name of the authenticated moderator, put in request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moderator(pub String);

/// The configured tokens.
#[derive(Clone, Default)]
pub struct ModeratorTokens {
    entries: Arc<Vec<(String, Vec<u8>)>>,
}

impl std::fmt::Debug for ModeratorTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.entries.iter().map(|(name, _)| name).collect();
        f.debug_struct("ModeratorTokens")
            .field("names", &names)
            .finish()
    }
}

impl ModeratorTokens {
    /// Parses `name:token` lines.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, token)) = line.split_once(':') else {
                bail!("line {}: expected name:token", number + 1);
            };
            let (name, token) = (name.trim(), token.trim());
            if name.is_empty() || token.is_empty() {
                bail!("line {}: name and token must not be empty", number + 1);
            }
            if token.len() < 16 {
                tracing::warn!(
                    moderator = name,
                    "moderator token shorter than 16 characters"
                );
            }
            entries.push((name.to_owned(), token.as_bytes().to_vec()));
        }
        Ok(Self {
            entries: Arc::new(entries),
        })
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read moderator tokens file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in moderator tokens file {}", path.display()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The moderator whose token this is.
    pub fn authenticate(&self, token: &[u8]) -> Option<&str> {
        let mut found = None;
        for (name, expected) in self.entries.iter() {
            if bool::from(expected.as_slice().ct_eq(token)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// The interceptor in front of `ModerationService`.
#[derive(Clone)]
pub struct ModeratorAuth {
    tokens: ModeratorTokens,
    failures: Arc<RateLimiter<IpAddr>>,
    trusted_proxies: TrustedProxies,
    metrics: Arc<Metrics>,
}

impl ModeratorAuth {
    /// `failures`: failed attempts an address may make.
    pub fn new(
        tokens: ModeratorTokens,
        failures: RatePolicy,
        trusted_proxies: TrustedProxies,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            tokens,
            failures: Arc::new(RateLimiter::new(failures)),
            trusted_proxies,
            metrics,
        }
    }

    fn refuse(&self, caller: Option<IpAddr>, reason: &'static str) -> Status {
        tracing::warn!(
            caller = caller.map(tracing::field::display),
            reason,
            "moderator authentication failed"
        );
        if let Some(caller) = caller {
            let _ = self.failures.try_acquire(&caller);
        }
        Status::unauthenticated(reason)
    }
}

impl Interceptor for ModeratorAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = peer::caller(&request, &self.trusted_proxies);
        if let Some(caller) = caller
            && let Err(retry_after) = self.failures.check(&caller)
        {
            self.metrics.rate_limited("auth");
            return Err(Error::RateLimited {
                what: "too many failed authentications from this address",
                retry_after,
            }
            .into());
        }
        let Some(header) = request.metadata().get("authorization") else {
            return Err(self.refuse(caller, "missing authorization: Bearer <token>"));
        };
        let Some(token) = header.as_bytes().strip_prefix(b"Bearer ") else {
            return Err(self.refuse(caller, "authorization must be: Bearer <token>"));
        };
        let Some(name) = self.tokens.authenticate(token).map(str::to_owned) else {
            return Err(self.refuse(caller, "unknown moderator token"));
        };
        request.extensions_mut().insert(Moderator(name));
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_parsed_and_matched_by_name() {
        let tokens = ModeratorTokens::parse(
            "# moderators\nalice:tok-alice-0123456789\n\nbob: tok-bob-0123456789 \n",
        )
        .unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens.authenticate(b"tok-bob-0123456789"), Some("bob"));
        assert_eq!(tokens.authenticate(b"tok-bob"), None);
        assert_eq!(tokens.authenticate(b""), None);
    }

    #[test]
    fn a_malformed_line_is_an_error() {
        assert!(ModeratorTokens::parse("no-colon-here").is_err());
        assert!(ModeratorTokens::parse(":token").is_err());
    }
}
