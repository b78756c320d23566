//! Egress policy for connections the sidecar does not intercept, decided before any decryption.

use std::net::IpAddr;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Deny,
    Passthrough,
}

/// `[egress]`: the default action and the passthrough rules (a connection passes when any rule matches).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EgressPolicy {
    #[serde(default)]
    pub default: Action,
    /// Host names (SNI or `Host`): `example.com` exactly, `*.example.com` for its subdomains (not itself).
    #[serde(default)]
    pub passthrough_hosts: Vec<String>,
    /// Destination networks, `10.1.0.0/16`, `2001:db8::/32`, or single addresses.
    #[serde(default)]
    pub passthrough_cidrs: Vec<String>,
    /// Destination ports.
    #[serde(default)]
    pub passthrough_ports: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| format!("{s:?}: not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or(format!("{s:?}: bad prefix"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct Matcher {
    default: Action,
    exact: Vec<String>,
    suffixes: Vec<String>,
    cidrs: Vec<Cidr>,
    ports: Vec<u16>,
}

/// Which rule decided, for metrics and logs (never the host itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Host,
    Cidr,
    Port,
    Default,
}

impl Matcher {
    pub fn new(p: &EgressPolicy) -> Result<Matcher, String> {
        let mut exact = Vec::new();
        let mut suffixes = Vec::new();
        for h in &p.passthrough_hosts {
            let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
            if let Some(s) = h.strip_prefix("*.") {
                if s.is_empty() {
                    return Err("egress.passthrough_hosts: \"*.\" needs a domain".into());
                }
                suffixes.push(format!(".{s}"));
            } else if h.is_empty() || h.contains('*') {
                return Err(format!("egress.passthrough_hosts: {h:?}: a host or *.domain"));
            } else {
                exact.push(h);
            }
        }
        let cidrs = p
            .passthrough_cidrs
            .iter()
            .map(|c| Cidr::parse(c).map_err(|e| format!("egress.passthrough_cidrs: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Matcher {
            default: p.default,
            exact,
            suffixes,
            cidrs,
            ports: p.passthrough_ports.clone(),
        })
    }

    /// Decides for a connection to `host` (SNI/Host, when known) at `ip:port` (when known).
    pub fn decide(&self, host: Option<&str>, ip: Option<IpAddr>, port: Option<u16>) -> (Action, Reason) {
        if let Some(h) = host {
            let h = h.trim_end_matches('.').to_ascii_lowercase();
            if self.exact.contains(&h) || self.suffixes.iter().any(|s| h.ends_with(s.as_str())) {
                return (Action::Passthrough, Reason::Host);
            }
        }
        if let Some(ip) = ip {
            if self.cidrs.iter().any(|c| c.contains(ip)) {
                return (Action::Passthrough, Reason::Cidr);
            }
        }
        if let Some(p) = port {
            if self.ports.contains(&p) {
                return (Action::Passthrough, Reason::Port);
            }
        }
        (self.default, Reason::Default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn m(hosts: &[&str], cidrs: &[&str], ports: &[u16]) -> Matcher {
        Matcher::new(&EgressPolicy {
            default: Action::Deny,
            passthrough_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            passthrough_cidrs: cidrs.iter().map(|s| s.to_string()).collect(),
            passthrough_ports: ports.to_vec(),
        })
        .unwrap()
    }

    #[test]
    fn rules() {
        let p = m(
            &["pypi.org", "*.github.com"],
            &["10.1.0.0/16", "2001:db8::/32"],
            &[5432],
        );
        assert_eq!(p.decide(Some("PyPI.org."), None, None).0, Action::Passthrough);
        assert_eq!(p.decide(Some("api.github.com"), None, None).0, Action::Passthrough);
        assert_eq!(p.decide(Some("github.com"), None, None).0, Action::Deny);
        assert_eq!(p.decide(Some("evilgithub.com"), None, None).0, Action::Deny);
        assert_eq!(
            p.decide(None, Some("10.1.200.3".parse().unwrap()), None),
            (Action::Passthrough, Reason::Cidr)
        );
        assert_eq!(
            p.decide(None, Some("::ffff:10.1.2.3".parse().unwrap()), None).0,
            Action::Passthrough
        );
        assert_eq!(p.decide(None, Some("10.2.0.1".parse().unwrap()), None).0, Action::Deny);
        assert_eq!(
            p.decide(None, Some("2001:db8::1".parse().unwrap()), None).0,
            Action::Passthrough
        );
        assert_eq!(p.decide(None, None, Some(5432)), (Action::Passthrough, Reason::Port));
        assert_eq!(p.decide(None, None, Some(443)), (Action::Deny, Reason::Default));
        assert!(Matcher::new(&EgressPolicy {
            passthrough_cidrs: vec!["10.0.0.0/33".into()],
            ..Default::default()
        })
        .is_err());
        assert!(Matcher::new(&EgressPolicy {
            passthrough_hosts: vec!["a*.com".into()],
            ..Default::default()
        })
        .is_err());
    }

    proptest! {
        /// Default deny: with no rules nothing passes.
        #[test]
        fn empty_policy_denies(h in "[a-z.]{0,30}", ip in any::<u32>(), port in any::<u16>()) {
            let p = m(&[], &[], &[]);
            prop_assert_eq!(p.decide(Some(&h), Some(IpAddr::V4(Ipv4Addr::from(ip))), Some(port)).0, Action::Deny);
        }

        /// A v4 CIDR contains exactly the addresses sharing its first `prefix` bits.
        #[test]
        fn cidr_v4_matches_bit_prefix(net in any::<u32>(), prefix in 0u8..=32, ip in any::<u32>()) {
            let c = Cidr::parse(&format!("{}/{prefix}", Ipv4Addr::from(net))).unwrap();
            let shift = 32 - prefix as u32;
            let same = prefix == 0 || (net >> shift) == (ip >> shift);
            prop_assert_eq!(c.contains(IpAddr::V4(Ipv4Addr::from(ip))), same);
            prop_assert!(c.contains(IpAddr::V4(Ipv4Addr::from(net))));
        }

        #[test]
        fn cidr_v6_matches_bit_prefix(net in any::<u128>(), prefix in 0u8..=128, ip in any::<u128>()) {
            let c = Cidr::parse(&format!("{}/{prefix}", Ipv6Addr::from(net))).unwrap();
            let shift = 128 - prefix as u32;
            let same = prefix == 0 || (net >> shift) == (ip >> shift);
            // v4-mapped addresses are compared as v4.
            prop_assume!(Ipv6Addr::from(ip).to_ipv4_mapped().is_none());
            prop_assert_eq!(c.contains(IpAddr::V6(Ipv6Addr::from(ip))), same);
        }

        /// `*.d` matches every proper subdomain of d and nothing that merely ends with d's text.
        #[test]
        fn wildcard_is_label_bounded(sub in "[a-z]{1,8}", d in "[a-z]{1,8}\\.[a-z]{2,4}", glue in "[a-z]{1,4}") {
            let p = m(&[&format!("*.{d}")], &[], &[]);
            let sub_d = format!("{sub}.{d}");
            let glued = format!("{glue}{d}");
            prop_assert_eq!(p.decide(Some(&sub_d), None, None).0, Action::Passthrough);
            prop_assert_eq!(p.decide(Some(&d), None, None).0, Action::Deny);
            prop_assert_eq!(p.decide(Some(&glued), None, None).0, Action::Deny);
        }

        /// The policy is the union of its rules: a connection passes exactly when some single rule alone lets it
        /// pass, whatever the order; adding rules never turns a pass into a deny; `default` only decides the rest.
        #[test]
        fn union_of_rules(
            hosts in proptest::collection::vec("(\\*\\.)?[a-c]{1,2}\\.(com|org)", 0..4),
            nets in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..3),
            ports in proptest::collection::vec(0u16..8, 0..3),
            h in "[a-c]{1,2}(\\.[a-c]{1,2})?\\.(com|org)",
            ip in any::<u32>(),
            port in 0u16..8,
            default_pass in any::<bool>(),
        ) {
            let cidrs: Vec<String> = nets.iter().map(|(n, p)| format!("{}/{p}", Ipv4Addr::from(*n))).collect();
            let pol = |hs: &[String], cs: &[String], ps: &[u16], d: Action| Matcher::new(&EgressPolicy {
                default: d,
                passthrough_hosts: hs.to_vec(),
                passthrough_cidrs: cs.to_vec(),
                passthrough_ports: ps.to_vec(),
            }).unwrap();
            let ip = IpAddr::V4(Ipv4Addr::from(ip));
            let ask = |m: &Matcher| m.decide(Some(&h), Some(ip), Some(port)).0;
            let any_single = hosts.iter().any(|x| ask(&pol(std::slice::from_ref(x), &[], &[], Action::Deny)) == Action::Passthrough)
                || cidrs.iter().any(|x| ask(&pol(&[], std::slice::from_ref(x), &[], Action::Deny)) == Action::Passthrough)
                || ports.iter().any(|x| ask(&pol(&[], &[], &[*x], Action::Deny)) == Action::Passthrough);
            let d = if default_pass { Action::Passthrough } else { Action::Deny };
            let all = pol(&hosts, &cidrs, &ports, d);
            let (action, reason) = all.decide(Some(&h), Some(ip), Some(port));
            if any_single {
                prop_assert_eq!(action, Action::Passthrough);
                prop_assert_ne!(reason, Reason::Default);
            } else {
                prop_assert_eq!((action, reason), (d, Reason::Default));
            }
            let mut rev = hosts.clone();
            rev.reverse();
            prop_assert_eq!(ask(&pol(&rev, &cidrs, &ports, d)), action);
        }

        /// Host rules never let a different host through.
        #[test]
        fn exact_host_only(a in "[a-z]{1,10}\\.com", b in "[a-z]{1,10}\\.com") {
            let p = m(&[&a], &[], &[]);
            let expect = if a == b { Action::Passthrough } else { Action::Deny };
            prop_assert_eq!(p.decide(Some(&b), None, None).0, expect);
        }
    }
}
