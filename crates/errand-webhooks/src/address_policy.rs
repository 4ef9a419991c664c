//! Which addresses a webhook may be sent to. By default only public unicast addresses: a
//! URL that resolves to loopback, a private network, link-local (cloud metadata services
//! live there), multicast, CGNAT, unspecified or broadcast space is refused, so a
//! subscription or a job's callback cannot make errand reach into the network it runs in.
//! IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible, IPv4-translated,
//! NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged as that IPv4 address; outside
//! global unicast `2000::/3`, and Teredo, site-local, documentation and benchmarking
//! ranges, nothing passes.
//!
//! The policy is applied to the address the sender connects to, after resolution, never to
//! the host name.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The address policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Any address goes (`allow_private_callbacks`): for tests and trusted networks.
    pub allow_private: bool,
    /// Networks allowed although not public (`callback_allow_cidrs`).
    pub allow: Vec<IpNet>,
}

impl AddressPolicy {
    /// Why `ip` is refused, or `None` when it may be connected to.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allow_private {
            return None;
        }
        let plain = canonical(ip);
        if self
            .allow
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&plain))
        {
            return None;
        }
        non_public(plain)
    }

    /// Whether `ip` may be connected to.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.refusal(ip).is_none()
    }
}

/// The IPv4 address an IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible (`::a.b.c.d`)
/// IPv6 address carries, else `ip` itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            // `::a.b.c.d` (deprecated IPv4-compatible); `::` and `::1` stay IPv6.
            if s[..6].iter().all(|&x| x == 0) && (s[6] != 0 || s[7] > 1) {
                let [.., a, b, c, d] = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            // NAT64 (`64:ff9b::/96`, RFC 6052) and IPv4-translated (`::ffff:0:a.b.c.d`)
            // reach the IPv4 address in their last 32 bits on networks that route them.
            if (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]) || (s[..6] == [0, 0, 0, 0, 0xffff, 0]) {
                let [.., a, b, c, d] = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            // 6to4 (`2002::/16`) carries the IPv4 address of its relay in bits 16..48.
            if s[0] == 0x2002 {
                let o = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

/// What kind of non-public address `ip` is, or `None` for a public one.
fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some("unspecified (0.0.0.0/8)")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (b & 0xc0) == 64 {
        Some("carrier-grade NAT (100.64.0.0/10)")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved (240.0.0.0/4)")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("IETF protocol assignments (192.0.0.0/24)")
    } else if a == 198 && (b & 0xfe) == 18 {
        Some("benchmarking (198.18.0.0/15)")
    } else if matches!(
        ip.octets(),
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]
    ) {
        Some("documentation")
    } else {
        None
    }
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("private (unique local fc00::/7)")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if (first & 0xffc0) == 0xfec0 {
        Some("site-local (fec0::/10)")
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        Some("NAT64 (64:ff9b:1::/48)")
    } else if first == 0x2001 && ip.segments()[1] == 0 {
        Some("Teredo (2001::/32)")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("documentation (2001:db8::/32)")
    } else if (first & 0xe000) != 0x2000 {
        Some("not global unicast (outside 2000::/3)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused_with_their_kind() {
        let p = AddressPolicy::default();
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "carrier-grade NAT (100.64.0.0/10)"),
            ("100.127.255.255", "carrier-grade NAT (100.64.0.0/10)"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("0.0.0.0", "unspecified (0.0.0.0/8)"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fc00::1", "private (unique local fc00::/7)"),
            ("fd12:3456::1", "private (unique local fc00::/7)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a00:1", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b:1::1", "NAT64 (64:ff9b:1::/48)"),
            ("::ffff:0:a00:1", "private"),
            ("2002:a00:1::1", "private"),
            ("2002:a9fe:a9fe::1", "link-local"),
            ("2001:0:4136:e378::1", "Teredo (2001::/32)"),
            ("2001:db8::1", "documentation (2001:db8::/32)"),
            ("fec0::1", "site-local (fec0::/10)"),
            ("100::1", "not global unicast (outside 2000::/3)"),
            ("192.0.0.8", "IETF protocol assignments (192.0.0.0/24)"),
            ("198.18.0.1", "benchmarking (198.18.0.0/15)"),
            ("198.19.255.1", "benchmarking (198.18.0.0/15)"),
            ("192.0.2.1", "documentation"),
            ("203.0.113.9", "documentation"),
        ] {
            assert_eq!(p.refusal(ip(addr)), Some(kind), "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let p = AddressPolicy::default();
        for addr in [
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "8.8.8.8",
            "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "198.20.0.1",
        ] {
            assert_eq!(p.refusal(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn allow_private_or_an_allowed_network_lets_them_through() {
        let all = AddressPolicy {
            allow_private: true,
            allow: vec![],
        };
        assert!(all.allows(ip("127.0.0.1")));
        let some = AddressPolicy {
            allow_private: false,
            allow: vec!["10.20.0.0/16".parse().unwrap(), "::1/128".parse().unwrap()],
        };
        assert!(some.allows(ip("10.20.3.4")));
        assert!(some.allows(ip("::ffff:10.20.3.4")));
        assert!(some.allows(ip("::1")));
        assert!(!some.allows(ip("10.21.0.1")));
        assert!(!some.allows(ip("127.0.0.1")));
    }
}
