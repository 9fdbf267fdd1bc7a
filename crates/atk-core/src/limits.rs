//! What a key may be restricted to beyond its scopes: the addresses it may
//! be used from (`allowed_ips`) and how often (`rate_limit`). Both are
//! chosen at creation and kept on rotation.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

/// At most this many networks in one allowlist.
pub const MAX_ALLOWED_NETWORKS: usize = 50;
/// A rate limit's bounds: at least one request, over 1 second to 1 day.
pub const MAX_RATE_REQUESTS: u32 = 1_000_000;
pub const MAX_RATE_SECONDS: u32 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LimitError {
    #[error(
        "{0:?} is not an IP address or CIDR network (for example 10.1.0.0/16 or 2001:db8::/32)"
    )]
    NotANetwork(String),
    #[error("allowed_ips holds at most {MAX_ALLOWED_NETWORKS} networks")]
    TooManyNetworks,
    #[error("rate_limit.requests must be 1 to {MAX_RATE_REQUESTS}")]
    Requests,
    #[error("rate_limit.per_seconds must be 1 to {MAX_RATE_SECONDS}")]
    Seconds,
}

/// The networks a key may be used from. Empty: anywhere. A boxed slice,
/// not a `Vec`: every cached key holds one, nearly always empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct IpAllowlist(Box<[IpNet]>);

impl IpAllowlist {
    /// Parses CIDR networks; a bare address means that one address. Host
    /// bits are cleared (`10.1.2.3/16` is `10.1.0.0/16`), duplicates dropped.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, LimitError> {
        if entries.len() > MAX_ALLOWED_NETWORKS {
            return Err(LimitError::TooManyNetworks);
        }
        let mut networks: Vec<IpNet> = Vec::with_capacity(entries.len());
        for entry in entries {
            // Taken as written (no trimming), as the OpenAPI document says.
            let text = entry.as_ref();
            let network = text
                .parse::<IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map(as_ipv4_if_mapped)
                .map_err(|_| LimitError::NotANetwork(text.chars().take(60).collect()))?;
            if !networks.contains(&network) {
                networks.push(network);
            }
        }
        Ok(Self(networks.into_boxed_slice()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` may use the key. An IPv4 address written as IPv6
    /// (`::ffff:10.1.2.3`) counts as the IPv4 address.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|network| network.contains(&ip))
    }

    /// The networks as text, for storage and display.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// An IPv6 network inside `::ffff:0:0/96` (IPv4 written as IPv6) as the
/// IPv4 network it is: `admits` reads such client addresses as IPv4, so
/// the entry would otherwise match no one. Found by fuzzing.
fn as_ipv4_if_mapped(network: IpNet) -> IpNet {
    match network {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(|net| IpNet::V4(net.trunc()))
                .unwrap_or(network),
            None => network,
        },
        other => other,
    }
}

/// At most `requests` verifications every `per_seconds` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    #[schema(minimum = 1, maximum = 1_000_000, example = 100)]
    #[serde(deserialize_with = "whole_number")]
    pub requests: u32,
    #[schema(minimum = 1, maximum = 86_400, example = 60)]
    #[serde(deserialize_with = "whole_number")]
    pub per_seconds: u32,
}

/// A JSON integer, also when written with a zero fraction (`60.0`): JSON
/// Schema counts that as an integer, so a client may send it.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let number = f64::deserialize(deserializer)?;
    if number.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&number) {
        Ok(number as u32)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a whole number from 0 to {}, got {number}",
            u32::MAX
        )))
    }
}

impl RateLimit {
    pub fn checked(self) -> Result<Self, LimitError> {
        if !(1..=MAX_RATE_REQUESTS).contains(&self.requests) {
            return Err(LimitError::Requests);
        }
        if !(1..=MAX_RATE_SECONDS).contains(&self.per_seconds) {
            return Err(LimitError::Seconds);
        }
        Ok(self)
    }
}

/// `REQUESTS/SECONDS`, for example `100/60` (flags and settings).
impl std::str::FromStr for RateLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (requests, per_seconds) = text
            .split_once('/')
            .ok_or_else(|| "expected REQUESTS/SECONDS, for example 100/60".to_owned())?;
        let number = |part: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("{part:?} is not a whole number"))
        };
        RateLimit {
            requests: number(requests)?,
            per_seconds: number(per_seconds)?,
        }
        .checked()
        .map_err(|error| error.to_string())
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.requests, self.per_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_ipv4_address_written_as_ipv6_is_allowed_as_the_ipv4_address() {
        for entry in [
            "::ffff:10.1.2.3",
            "::ffff:10.1.2.3/128",
            "::ffff:10.1.0.0/112",
        ] {
            let allowlist = IpAllowlist::parse(&[entry]).unwrap();
            for client in ["10.1.2.3", "::ffff:10.1.2.3"] {
                assert!(
                    allowlist.admits(client.parse().unwrap()),
                    "{entry} refuses {client}"
                );
            }
            assert!(!allowlist.admits("10.2.0.1".parse().unwrap()), "{entry}");
        }
        assert_eq!(
            IpAllowlist::parse(&["::ffff:10.1.0.0/112"])
                .unwrap()
                .to_strings(),
            ["10.1.0.0/16"]
        );
    }

    #[test]
    fn networks_and_bare_addresses_parse_and_admit_what_they_contain() {
        let list =
            IpAllowlist::parse(&["10.1.0.0/16", "2001:db8::/32", "203.0.113.7", "10.1.2.3/16"])
                .unwrap();
        assert_eq!(
            list.to_strings(),
            ["10.1.0.0/16", "2001:db8::/32", "203.0.113.7/32"]
        );
        for inside in [
            "10.1.255.1",
            "2001:db8::1",
            "203.0.113.7",
            "::ffff:10.1.0.9",
        ] {
            assert!(list.admits(inside.parse().unwrap()), "{inside}");
        }
        for outside in ["10.2.0.1", "2001:db9::1", "203.0.113.8", "127.0.0.1"] {
            assert!(!list.admits(outside.parse().unwrap()), "{outside}");
        }
    }

    #[test]
    fn garbage_and_oversized_lists_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "banana",
            "10.0.0",
            "",
            "::/129",
            "1.2.3.4/-1",
        ] {
            assert!(
                matches!(IpAllowlist::parse(&[bad]), Err(LimitError::NotANetwork(_))),
                "{bad}"
            );
        }
        let many: Vec<String> = (0..=MAX_ALLOWED_NETWORKS)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect();
        assert_eq!(IpAllowlist::parse(&many), Err(LimitError::TooManyNetworks));
    }

    #[test]
    fn rate_limits_are_bounded() {
        assert!(
            RateLimit {
                requests: 1,
                per_seconds: 1
            }
            .checked()
            .is_ok()
        );
        assert_eq!(
            RateLimit {
                requests: 0,
                per_seconds: 1
            }
            .checked(),
            Err(LimitError::Requests)
        );
        assert_eq!(
            RateLimit {
                requests: 5,
                per_seconds: 0
            }
            .checked(),
            Err(LimitError::Seconds)
        );
        assert_eq!(
            RateLimit {
                requests: 5,
                per_seconds: 86_401
            }
            .checked(),
            Err(LimitError::Seconds)
        );
    }

    #[test]
    fn a_rate_limit_reads_as_requests_per_seconds() {
        let limit: RateLimit = "100/60".parse().unwrap();
        assert_eq!(
            limit,
            RateLimit {
                requests: 100,
                per_seconds: 60
            }
        );
        assert_eq!(limit.to_string(), "100/60");
        for bad in ["100", "0/60", "a/60", "100/0", "100/60/1", ""] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

    proptest! {
        /// Any text either parses to networks that print and parse back to
        /// themselves, or is refused; it never panics.
        #[test]
        fn the_allowlist_parser_round_trips_or_refuses(text in "\\PC{0,40}") {
            if let Ok(list) = IpAllowlist::parse(&[text.as_str()]) {
                let again = IpAllowlist::parse(&list.to_strings()).unwrap();
                prop_assert_eq!(again, list);
            }
        }

        #[test]
        fn an_address_is_admitted_by_its_own_network(a in any::<u32>(), prefix in 0u8..=32) {
            let ip = std::net::Ipv4Addr::from(a);
            let list = IpAllowlist::parse(&[format!("{ip}/{prefix}")]).unwrap();
            prop_assert!(list.admits(IpAddr::V4(ip)));
        }
    }
}
