//! Which addresses an effect may reach: IANA's special-purpose ranges, the
//! IPv6 forms that embed an IPv4 address, and hosts written as numbers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 ranges no effect may reach without `allow-private`: every entry of
/// IANA's IPv4 special-purpose address registry, and multicast.
const SPECIAL_V4: [(Ipv4Addr, u8); 18] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (CGNAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 31, 196, 0), 24), // AS112-v4
    (Ipv4Addr::new(192, 52, 193, 0), 24), // AMT
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // deprecated 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(192, 175, 48, 0), 24), // direct delegation AS112
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, and broadcast 255.255.255.255
];

/// IPv6 ranges no effect may reach without `allow-private`, whatever they
/// embed: the entries of IANA's IPv6 special-purpose address registry that
/// carry no IPv4 address to check, and multicast.
const SPECIAL_V6: [(Ipv6Addr, u8); 11] = [
    // Unspecified, loopback, and IPv4-compatible (deprecated) `::a.b.c.d`.
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use NAT64: the embedding varies
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),     // discard-only
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),    // IETF protocol assignments, Teredo
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),    // documentation
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16),    // segment routing (SRv6) SIDs
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),     // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),    // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),    // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),     // multicast
];

fn in_range(ip: u128, net: u128, prefix: u8, bits: u32) -> bool {
    prefix == 0 || (ip ^ net) >> (bits - u32::from(prefix)) == 0
}

/// Whether `ip` is an address an effect may not reach unless the operator
/// allows private addresses: any IANA special-purpose IPv4 or IPv6 range
/// (loopback, private, link-local, unique-local, unspecified, shared, this
/// network, documentation, benchmarking, protocol assignments, AS112, AMT,
/// discard, SRv6, Teredo, ...), multicast, broadcast and reserved; and IPv6
/// addresses that embed an IPv4 address (v4-mapped `::ffff:0:0/96`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) whose embedded address is one of those.
pub fn is_private_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            // Keeps the 32 bits that hold the IPv4 address.
            let embedded = |shift: u32| Ipv4Addr::from((bits >> shift) as u32);
            let mapped = Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0);
            let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);
            let six_to_four = Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0);
            if in_range(bits, u128::from(mapped), 96, 128)
                || in_range(bits, u128::from(nat64), 96, 128)
            {
                return is_private_v4(embedded(0));
            }
            if in_range(bits, u128::from(six_to_four), 16, 128) {
                return is_private_v4(embedded(80));
            }
            SPECIAL_V6
                .iter()
                .any(|&(net, prefix)| in_range(bits, u128::from(net), prefix, 128))
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let bits = u128::from(u32::from(ip));
    SPECIAL_V4
        .iter()
        .any(|&(net, prefix)| in_range(bits, u128::from(u32::from(net)), prefix, 32))
}

/// The digits of a `0x` hex number part.
fn hex(part: &str) -> Option<&str> {
    part.strip_prefix("0x").or_else(|| part.strip_prefix("0X"))
}

/// The IPv4 address a host "ending in a number" spells (the URL standard's
/// rule: its last label is a decimal, `0x` hex or `0`-octal number), in the
/// forms `inet_aton` accepts: `a.b.c.d`, `a.b.c` (c: 16 bits), `a.b`
/// (b: 24 bits), `a` (32 bits), each part decimal, octal or hex.
/// `Some(None)` for such a host that is no valid address; `None` for a host
/// that does not end in a number (a name to resolve).
fn numeric_ipv4(host: &str) -> Option<Option<Ipv4Addr>> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let last = host.rsplit('.').next().unwrap_or_default();
    let is_number = !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || hex(last).is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())));
    if !is_number {
        return None;
    }
    let parse = |p: &str| -> Option<u64> {
        if let Some(h) = hex(p) {
            if h.is_empty() {
                return Some(0);
            }
            u64::from_str_radix(h, 16).ok()
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()
        } else {
            p.parse().ok()
        }
    };
    let parts: Option<Vec<u64>> = host.split('.').map(parse).collect();
    let address = parts.and_then(|parts| {
        let (last, first) = parts.split_last()?;
        if parts.len() > 4 || first.iter().any(|&p| p > 255) {
            return None;
        }
        let rest_bits = 32 - 8 * first.len();
        if *last >= 1u64 << rest_bits {
            return None;
        }
        let high = first
            .iter()
            .enumerate()
            .fold(0u64, |acc, (i, &p)| acc | p << (24 - 8 * i));
        u32::try_from(high | last).ok().map(Ipv4Addr::from)
    });
    Some(address)
}

/// The host as the policy sees it: an IP address in its canonical text
/// form (a numeric IPv4 spelling becomes dotted decimal), else the
/// lowercase name. `None` for a numeric host that is no valid address.
pub(super) fn canonical_host(host: &str) -> Option<String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    match numeric_ipv4(host) {
        Some(Some(ip)) => Some(ip.to_string()),
        Some(None) => None,
        None => Some(host.to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `first/prefix` as an inclusive range of numbers (test code: its own
    /// parsing, independent of the tables under test).
    fn cidr(text: &str) -> (u128, u128, bool) {
        let (addr, prefix) = text.split_once('/').unwrap();
        let prefix: u32 = prefix.parse().unwrap();
        match addr.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => {
                let first = u128::from(u32::from(a));
                (first, first + (1u128 << (32 - prefix)) - 1, false)
            }
            IpAddr::V6(a) => {
                let first = u128::from(a);
                (first, first | (u128::MAX >> prefix), true)
            }
        }
    }

    fn ip(n: u128, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(n))
        } else {
            IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap()))
        }
    }

    /// Every IANA special-purpose range (IPv4 and IPv6 registries), and
    /// multicast.
    const SPECIAL: [&str; 32] = [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.31.196.0/24",
        "192.52.193.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "192.175.48.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/96",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "2002::/16",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    ];

    #[test]
    fn every_special_purpose_range_is_private_at_both_edges() {
        let ranges: Vec<_> = SPECIAL.iter().map(|r| cidr(r)).collect();
        let listed = |n: u128, v6: bool| {
            ranges
                .iter()
                .any(|&(first, last, r6)| r6 == v6 && first <= n && n <= last)
        };
        for (text, &(first, last, v6)) in SPECIAL.iter().zip(&ranges) {
            // The first and last address of every range (for the ranges that
            // embed IPv4, these embed 0.0.0.0 and 255.255.255.255).
            assert!(is_private_address(ip(first, v6)), "{text}: first");
            assert!(is_private_address(ip(last, v6)), "{text}: last");
            // Just outside: public unless another listed range has it.
            let max = if v6 { u128::MAX } else { u128::from(u32::MAX) };
            if first > 0 {
                let below = first - 1;
                let want = listed(below, v6);
                assert_eq!(is_private_address(ip(below, v6)), want, "{text}: below");
            }
            if last < max {
                let above = last + 1;
                let want = listed(above, v6);
                assert_eq!(is_private_address(ip(above, v6)), want, "{text}: above");
            }
        }
    }

    #[test]
    fn ipv6_forms_are_checked_by_the_ipv4_address_they_embed() {
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::7f00:1",
            "64:ff9b:1:ffff::1.1.1.1",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2002:c0a8:101::",
            "::127.0.0.1",
            "::1.1.1.1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(is_private_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
            "2002:101:101::1",
        ] {
            assert!(!is_private_address(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn hosts_written_as_numbers_are_the_addresses_they_spell() {
        for (host, want) in [
            ("2130706433", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("10.0x10.1", "10.16.0.1"),
            ("167772165", "10.0.0.5"),
            ("0", "0.0.0.0"),
            ("127.0.0.1.", "127.0.0.1"),
            ("::FFFF:7F00:1", "::ffff:127.0.0.1"),
        ] {
            assert_eq!(canonical_host(host).as_deref(), Some(want), "{host}");
            assert!(is_private_address(want.parse().unwrap()), "{want}");
        }
        // A number that is no address is refused, never looked up.
        for host in [
            "4294967296",
            "256.0.0.1",
            "1.2.3.4.5",
            "foo.123",
            "09",
            "1.0x1000000",
        ] {
            assert_eq!(canonical_host(host), None, "{host}");
        }
        // Names stay names.
        for host in ["API.example.com", "123.example.com", "0x7f.example", "0x1g"] {
            assert_eq!(
                canonical_host(host).as_deref(),
                Some(host.to_ascii_lowercase().as_str())
            );
        }
    }
}
