//! The webhook SSRF guard: which addresses a webhook may reach. A URL is checked when
//! the hook is added (its literal host, or every address its name resolves to then)
//! and again at each delivery, where the HTTP client's resolver ([`Guarded`]) drops the
//! addresses that are not public — a name that resolved to a public address when it
//! was added and to `127.0.0.1` later reaches nothing. Redirects are never followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("`{0}` is not a URL: {1}")]
    Url(String, String),
    #[error("a webhook URL is http:// or https://, not `{0}://`")]
    Scheme(String),
    #[error("a webhook URL has no user or password in it (`{0}`): put a secret in --secret")]
    Credentials(String),
    #[error(
        "{host} is {what} ({addr}): webhooks reach public addresses only \
         (--allow-private lets this hook reach loopback, private and link-local addresses)"
    )]
    NotPublic {
        host: String,
        addr: IpAddr,
        what: &'static str,
    },
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
}

/// What kind of address `ip` is, when it is not a public unicast one.
pub fn not_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => not_public_v4(v4),
        IpAddr::V6(v6) => not_public_v6(v6),
    }
}

fn not_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_unspecified() || a == 0 => "an unspecified address",
        (169, 254, _) => "a link-local address (cloud metadata lives there)",
        _ if ip.is_private() => "a private address",
        (100, b, _) if (64..128).contains(&b) => "a shared (carrier-grade NAT) address",
        (192, 0, 0) => "an IETF protocol address",
        // 6to4 relay anycast: reaches whatever IPv4 address the packet embeds.
        (192, 88, 99) => "a 6to4 relay address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18 | 19, _) => "a benchmarking address",
        _ if ip.is_multicast() => "a multicast address",
        _ if ip.is_broadcast() || a >= 240 => "a reserved address",
        _ => return None,
    })
}

fn not_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return not_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if s[0..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return not_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    // 6to4 (2002::/16) carries an IPv4 address in bits 16..48: that address is
    // where the packet goes.
    if s[0] == 0x2002 {
        let [a, b] = s[1].to_be_bytes();
        let [c, d] = s[2].to_be_bytes();
        return not_public_v4(Ipv4Addr::new(a, b, c, d))
            .map(|_| "a 6to4 address of a non-public IPv4 address");
    }
    // Teredo (2001::/32) tunnels to the IPv4 address obfuscated in its last 32 bits
    // through the relay named in bits 32..64: whatever it reaches is not a public
    // IPv6 host of its own, so it is refused outright.
    if s[0] == 0x2001 && s[1] == 0 {
        return Some("a Teredo tunnel address");
    }
    Some(match s[0] {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_unspecified() => "an unspecified address",
        x if x & 0xfe00 == 0xfc00 => "a private (unique local) address",
        x if x & 0xffc0 == 0xfe80 => "a link-local address",
        x if x & 0xffc0 == 0xfec0 => "a site-local address",
        x if x & 0xff00 == 0xff00 => "a multicast address",
        0x2001 if s[1] == 0x0db8 => "a documentation address",
        // ::a.b.c.d (IPv4-compatible, deprecated) and the rest of ::/8
        0 => "a reserved address",
        _ => return None,
    })
}

/// Checks a webhook URL's form: http(s), no credentials. Returns it parsed.
pub fn parse(url: &str) -> Result<reqwest::Url, GuardError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| GuardError::Url(url.to_string(), e.to_string()))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => return Err(GuardError::Scheme(other.to_string())),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(GuardError::Credentials(shown(&parsed)));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(GuardError::Url(url.to_string(), "no host".into()));
    }
    Ok(parsed)
}

/// A URL as it may be shown: without user, password, query or fragment.
pub fn shown(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Checks every address `url` reaches now (its literal address, or every address its
/// name resolves to) unless `allow_private`.
pub async fn check(url: &reqwest::Url, allow_private: bool) -> Result<(), GuardError> {
    if allow_private {
        return Ok(());
    }
    let host = match url.host() {
        Some(url::Host::Ipv4(ip)) => return literal(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => return literal(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => d.to_string(),
        None => return Err(GuardError::Url(url.to_string(), "no host".into())),
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| GuardError::Resolve(host.clone(), e.to_string()))?
        .collect();
    for a in &addrs {
        if let Some(what) = not_public(a.ip()) {
            return Err(GuardError::NotPublic {
                host,
                addr: a.ip(),
                what,
            });
        }
    }
    Ok(())
}

fn literal(ip: IpAddr) -> Result<(), GuardError> {
    match not_public(ip) {
        Some(what) => Err(GuardError::NotPublic {
            host: ip.to_string(),
            addr: ip,
            what,
        }),
        None => Ok(()),
    }
}

/// The delivery client's resolver: a name resolves to its public addresses only
/// (none left: the delivery fails with the reason).
#[derive(Debug, Clone, Copy)]
pub struct Guarded;

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| not_public(a.ip()).is_none())
                .collect();
            if public.is_empty() {
                let (addr, what) = all
                    .first()
                    .map(|a| (a.ip(), not_public(a.ip()).unwrap_or("not public")))
                    .unwrap_or((IpAddr::V4(Ipv4Addr::UNSPECIFIED), "no address"));
                let e: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(GuardError::NotPublic { host, addr, what });
                return Err(e);
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn np(s: &str) -> bool {
        not_public(s.parse().unwrap()).is_some()
    }

    #[test]
    fn private_loopback_link_local_and_metadata_are_not_public() {
        for a in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "ff02::1",
            "2001:db8::1",
            // 6to4 of 127.0.0.1, 10.0.0.1 and 169.254.169.254; Teredo; 6to4 relays
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:0:a00:1::",
            "192.88.99.1",
        ] {
            assert!(np(a), "{a} should not be public");
        }
        for a in [
            "8.8.8.8",
            "140.82.112.3",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            // 6to4 of 8.8.8.8
            "2002:808:808::1",
        ] {
            assert!(!np(a), "{a} is public");
        }
    }

    #[test]
    fn urls_are_http_without_credentials() {
        assert!(parse("https://example.com/hook").is_ok());
        assert!(matches!(
            parse("ftp://example.com/"),
            Err(GuardError::Scheme(_))
        ));
        let e = parse("https://user:pw@example.com/x?token=1").unwrap_err();
        assert!(!e.to_string().contains("pw"), "{e}");
        assert!(!e.to_string().contains("token"), "{e}");
        assert!(matches!(parse("not a url"), Err(GuardError::Url(..))));
    }

    #[tokio::test]
    async fn literal_and_resolved_private_addresses_are_refused() {
        let u = parse("http://127.0.0.1:9/x").unwrap();
        assert!(matches!(
            check(&u, false).await,
            Err(GuardError::NotPublic { .. })
        ));
        assert!(check(&u, true).await.is_ok());
        let u = parse("http://[::1]:9/x").unwrap();
        assert!(check(&u, false).await.is_err());
        let u = parse("http://localhost:9/x").unwrap();
        let e = check(&u, false).await.unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        let u = parse("http://169.254.169.254/latest/meta-data").unwrap();
        assert!(
            check(&u, false)
                .await
                .unwrap_err()
                .to_string()
                .contains("metadata")
        );
    }

    #[tokio::test]
    async fn the_resolver_drops_what_is_not_public() {
        use reqwest::dns::Resolve;
        let e = match Guarded.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost resolved through the guard"),
            Err(e) => e,
        };
        assert!(e.to_string().contains("loopback"), "{e}");
    }
}
