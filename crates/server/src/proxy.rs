//! Who the client is when a reverse proxy stands in front, and who may read `/metrics`.
//!
//! Behind a proxy every connection comes from the proxy, so the login throttle would see one client
//! for the whole clinic. A proxy the operator names (`serve --behind-proxy [--trusted-proxy
//! ADDR/PREFIX]…`) says who its client was in `Forwarded` (RFC 7239) or `X-Forwarded-For`; anyone
//! else's such headers are ignored, since a client can write them itself. Each proxy appends the
//! address it received from, so the list is read from the right: the first address that is not a
//! trusted proxy is the client, and whatever a client wrote further left is never believed (OWASP
//! ASVS 4.0.3 V14 configuration; MDN X-Forwarded-For, "Security and privacy concerns").

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose forwarded-for headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// No proxy: the connection's own address is the client's.
    pub fn none() -> TrustedProxies {
        TrustedProxies(Vec::new())
    }

    /// These proxies (addresses or ranges).
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(nets)
    }

    /// A proxy on this machine: 127.0.0.0/8 and ::1.
    pub fn loopback() -> TrustedProxies {
        TrustedProxies(vec![
            "127.0.0.0/8".parse().expect("a range"),
            "::1/128".parse().expect("a range"),
        ])
    }

    /// The ranges trusted.
    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a connection from `peer` carrying `headers`: `peer` itself unless
    /// it is a trusted proxy; then the right-most forwarded address that is not a trusted proxy
    /// (`Forwarded` when present, else `X-Forwarded-For`). A list that cannot be read, or that
    /// names only proxies, leaves the last proxy's address: a client is never taken from text it
    /// could have written itself.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
        let Some(chain) = chain else {
            return peer;
        };
        let mut client = peer;
        for hop in chain.into_iter().rev() {
            match hop {
                Some(ip) if self.trusts(ip) => client = ip,
                Some(ip) => return canonical(ip),
                // "unknown", an obfuscated name or garbage: nothing to the left can be believed.
                None => return client,
            }
        }
        client
    }
}

/// An IPv4 address carried as IPv6 (`::ffff:a.b.c.d`, as dual-stack sockets report it) is the
/// IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// Who may read `/metrics`, by client address (through trusted proxies, as the login throttle
/// sees it). The default is this machine only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsAccess(Vec<IpNet>);

impl Default for MetricsAccess {
    fn default() -> Self {
        MetricsAccess::loopback()
    }
}

impl MetricsAccess {
    /// Loopback only: 127.0.0.0/8 and ::1.
    pub fn loopback() -> MetricsAccess {
        MetricsAccess(TrustedProxies::loopback().nets().to_vec())
    }

    /// These addresses or ranges (loopback is not added: name it if it is wanted).
    pub fn from_nets(nets: Vec<IpNet>) -> MetricsAccess {
        MetricsAccess(nets)
    }

    /// The ranges allowed.
    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }

    /// Whether a client at `ip` may read the metrics. A request with no known address (a router
    /// driven in-process, with no connection) is refused: deny by default.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else { return false };
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// One hop's address: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`;
/// `None` for anything else.
fn hop_address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The `for=` of each element of every `Forwarded` header, in order (RFC 7239 §4, §6).
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        let value = value.to_str().ok()?;
        for element in value.split(',') {
            let for_value = element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim().eq_ignore_ascii_case("for").then_some(value)
            });
            hops.push(for_value.and_then(hop_address));
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// The addresses of every `X-Forwarded-For` header, in order.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let value = value.to_str().ok()?;
        hops.extend(value.split(',').map(hop_address));
    }
    (!hops.is_empty()).then_some(hops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_for_loopback_unless_widened() {
        let local = MetricsAccess::default();
        assert!(local.allows(Some("127.0.0.1".parse().unwrap())));
        assert!(local.allows(Some("127.8.9.10".parse().unwrap())));
        assert!(local.allows(Some("::1".parse().unwrap())));
        // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        assert!(local.allows(Some("::ffff:127.0.0.1".parse().unwrap())));
        assert!(!local.allows(Some("10.0.0.5".parse().unwrap())));
        assert!(!local.allows(Some("::ffff:10.0.0.5".parse().unwrap())));
        assert!(!local.allows(None), "no known address is refused");
        let office = MetricsAccess::from_nets(vec!["10.0.0.0/24".parse().unwrap()]);
        assert!(office.allows(Some("10.0.0.5".parse().unwrap())));
        assert!(!office.allows(Some("10.0.1.5".parse().unwrap())));
        assert!(
            !office.allows(Some("127.0.0.1".parse().unwrap())),
            "loopback is not added silently"
        );
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        h
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_a_trusted_proxy_the_connection_is_the_client_whatever_the_headers_say() {
        let spoofed = headers(&[("x-forwarded-for", "10.9.9.9"), ("forwarded", "for=10.8.8.8")]);
        assert_eq!(
            TrustedProxies::none().client(ip("203.0.113.7"), &spoofed),
            ip("203.0.113.7")
        );
        // A stranger who is not the proxy cannot claim to be someone else.
        assert_eq!(
            TrustedProxies::loopback().client(ip("203.0.113.7"), &spoofed),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn behind_the_proxy_the_right_most_address_it_did_not_write_is_the_client() {
        let proxies = TrustedProxies::loopback();
        let proxy = ip("127.0.0.1");
        // nginx: proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; the client wrote
        // "10.9.9.9" itself, nginx appended the address it really saw.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 198.51.100.20")]);
        assert_eq!(proxies.client(proxy, &h), ip("198.51.100.20"));
        // Two proxies (a load balancer at 10.0.0.5 in front of the local one), both trusted.
        let two = TrustedProxies::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/24".parse().unwrap(),
        ]);
        let h = headers(&[("x-forwarded-for", "198.51.100.20, 10.0.0.5")]);
        assert_eq!(two.client(proxy, &h), ip("198.51.100.20"));
        // Split over several headers, in order.
        let h = headers(&[
            ("x-forwarded-for", "10.9.9.9"),
            ("x-forwarded-for", "198.51.100.21"),
        ]);
        assert_eq!(proxies.client(proxy, &h), ip("198.51.100.21"));
        // No header: the proxy's own address.
        assert_eq!(proxies.client(proxy, &HeaderMap::new()), proxy);
    }

    #[test]
    fn forwarded_is_read_as_rfc_7239_writes_it_and_wins_over_x_forwarded_for() {
        let proxies = TrustedProxies::loopback();
        let proxy = ip("::1");
        for (value, client) in [
            ("for=192.0.2.60;proto=https;by=203.0.113.43", "192.0.2.60"),
            ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            ("for=192.0.2.43:47011", "192.0.2.43"),
            ("for=10.9.9.9, for=198.51.100.22", "198.51.100.22"),
            ("For=\"198.51.100.23\"", "198.51.100.23"),
        ] {
            let h = headers(&[("forwarded", value), ("x-forwarded-for", "10.1.1.1")]);
            assert_eq!(proxies.client(proxy, &h), ip(client), "{value}");
        }
    }

    #[test]
    fn an_unreadable_hop_stops_the_walk_at_the_last_trusted_proxy() {
        let proxies = TrustedProxies::loopback();
        let proxy = ip("127.0.0.1");
        for value in [
            "unknown",
            "for=_hidden",
            "not an address",
            "for=unknown, for=127.0.0.2",
        ] {
            let h = headers(&[("forwarded", value)]);
            let got = proxies.client(proxy, &h);
            assert!(got.is_loopback(), "{value}: {got}");
        }
        let h = headers(&[("x-forwarded-for", "198.51.100.9, garbage")]);
        assert_eq!(
            proxies.client(proxy, &h),
            proxy,
            "nothing left of a hop that cannot be read"
        );
    }

    #[test]
    fn an_ipv4_peer_seen_through_a_dual_stack_socket_is_matched_as_ipv4() {
        let proxies = TrustedProxies::loopback();
        let h = headers(&[("x-forwarded-for", "198.51.100.30")]);
        assert_eq!(proxies.client(ip("::ffff:127.0.0.1"), &h), ip("198.51.100.30"));
        let h = headers(&[("x-forwarded-for", "::ffff:198.51.100.31")]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &h), ip("198.51.100.31"));
    }
}
