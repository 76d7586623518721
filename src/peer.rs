//! Who is calling: the address that per-peer limits are keyed on.
//!
//! Normally the connection's peer. A news site's proxy, though, forwards
//! every reader from its own address: when the peer is one of the
//! configured trusted proxies, the client is the rightmost address in
//! `X-Forwarded-For` that is not itself a trusted proxy (proxies append the
//! address they received from, so everything left of that could be forged
//! by the client). From any other peer the header is ignored.

use std::{net::IpAddr, str::FromStr};

use anyhow::Context;
use ipnet::IpNet;
use tonic::Request;

use crate::transport::PeerInfo;

/// Proxy addresses (or networks) whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.7`) and networks (`10.0.0.0/24`).
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .with_context(|| {
                        format!("invalid trusted proxy {entry:?} (an IP address or CIDR network)")
                    })
            })
            .collect::<anyhow::Result<_>>()
            .map(Self)
    }

    /// Whether `address` is one of the trusted proxies.
    pub fn is_trusted(&self, address: IpAddr) -> bool {
        self.contains(address)
    }

    fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client behind `peer`, given the `X-Forwarded-For` values.
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_for.rev().flat_map(|value| value.rsplit(',')) {
            match IpAddr::from_str(hop.trim()) {
                Ok(address) if self.contains(address) => client = address,
                Ok(address) => return address.to_canonical(),
                // A malformed entry: nothing to its left can be trusted.
                Err(_) => return client,
            }
        }
        client
    }
}

/// The address per-peer limits apply to for this request, if known (calls
/// made in-process have none).
pub fn caller<T>(request: &Request<T>, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<PeerInfo>()?
        .0
        .remote_addr()?
        .ip()
        .to_canonical();
    let forwarded_for = request
        .metadata()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>();
    Some(limit_key(
        trusted.client_address(peer, forwarded_for.into_iter()),
    ))
}

/// The key a rate limit counts an address under: IPv6 addresses by their
/// /64 network, which one subscriber usually holds whole.
pub fn limit_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_proxy_can_name_the_client() {
        let trusted = TrustedProxies::parse(&["10.0.0.7".into(), "192.168.0.0/16".into()]).unwrap();
        let forged = ["6.6.6.6, 1.2.3.4"];
        assert_eq!(
            trusted.client_address(ip("8.8.8.8"), forged.into_iter()),
            ip("8.8.8.8")
        );
        assert_eq!(
            trusted.client_address(ip("10.0.0.7"), forged.into_iter()),
            ip("1.2.3.4")
        );
        // Trusted hops on the right are skipped; what the client wrote on
        // the left is not believed.
        let chained = ["6.6.6.6", "1.2.3.4, 192.168.3.3"];
        assert_eq!(
            trusted.client_address(ip("10.0.0.7"), chained.into_iter()),
            ip("1.2.3.4")
        );
        // Nothing usable: the proxy itself.
        assert_eq!(
            trusted.client_address(ip("10.0.0.7"), ["garbage"].into_iter()),
            ip("10.0.0.7")
        );
        assert_eq!(
            trusted.client_address(ip("10.0.0.7"), [].into_iter()),
            ip("10.0.0.7")
        );
        assert_eq!(
            trusted.client_address(ip("::ffff:10.0.0.7"), ["1.2.3.4"].into_iter()),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn invalid_entries_are_refused() {
        assert!(TrustedProxies::parse(&["10.0.0.300".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy".into()]).is_err());
    }

    #[test]
    fn ipv6_addresses_are_counted_by_their_64() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("1.2.3.4")), ip("1.2.3.4"));
    }
}
