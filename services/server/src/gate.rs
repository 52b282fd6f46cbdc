//! Who the client is: the TCP peer, or a forwarded address only from a trusted proxy. (The
//! per-request audit mark and the tally of unauthenticated noise are the application layer's:
//! `vellum_app::tally`.)

use std::net::IpAddr;

use ipnet::IpNet;

/// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed (a reverse proxy in front
/// of Vellum). From any other peer those headers are ignored: a client could write anything
/// there.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client's address: the TCP peer, unless the peer is a trusted proxy, in which case
    /// the right-most forwarded address that is not itself a trusted proxy (each proxy appends
    /// the address it saw, so the left part of the list is the client's to invent).
    pub fn client_address(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: Option<&str>,
        forwarded: Option<&str>,
    ) -> String {
        let Some(peer) = peer else {
            return String::new();
        };
        if !self.trusts(peer) {
            return peer.to_string();
        }
        let chain: Vec<IpAddr> = match (forwarded, forwarded_for) {
            (Some(header), _) => forwarded_header_addresses(header),
            (None, Some(header)) => header.split(',').filter_map(parse_address).collect(),
            (None, None) => Vec::new(),
        };
        chain
            .iter()
            .rev()
            .find(|address| !self.trusts(**address))
            .copied()
            .unwrap_or(peer)
            .to_string()
    }
}

/// One address of a forwarded list: `192.0.2.7`, `192.0.2.7:443`, `2001:db8::1`,
/// `[2001:db8::1]:443`, possibly quoted. Anything else (`unknown`, obfuscated ids) is skipped.
fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, _port) = text.rsplit_once(':')?;
    host.parse().ok()
}

/// The `for=` addresses of an RFC 7239 `Forwarded` header, in order.
fn forwarded_header_addresses(header: &str) -> Vec<IpAddr> {
    header
        .split(',')
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("for")
                .then(|| parse_address(value))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse().unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxies = TrustedProxies(vec![net("10.0.0.0/8"), net("::1/128")]);
        // An untrusted peer's header is ignored.
        assert_eq!(
            proxies.client_address(ip("203.0.113.9"), Some("198.51.100.1"), None),
            "203.0.113.9"
        );
        // Through a trusted proxy: the right-most untrusted address.
        assert_eq!(
            proxies.client_address(
                ip("10.0.0.2"),
                Some("1.2.3.4, 198.51.100.7, 10.0.0.5"),
                None
            ),
            "198.51.100.7"
        );
        // RFC 7239, with ports and IPv6.
        assert_eq!(
            proxies.client_address(
                ip("::1"),
                None,
                Some(r#"for="[2001:db8::7]:4711";proto=https, for=10.0.0.9"#)
            ),
            "2001:db8::7"
        );
        // A trusted peer with no header, or only garbage: the peer.
        assert_eq!(
            proxies.client_address(ip("10.0.0.2"), Some("unknown, _hidden"), None),
            "10.0.0.2"
        );
        assert_eq!(
            TrustedProxies::default().client_address(ip("127.0.0.1"), Some("1.2.3.4"), None),
            "127.0.0.1"
        );
    }
}
