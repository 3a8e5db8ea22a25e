//! Who "the client" is for rate limits (the TCP peer, or what trusted
//! proxies say in `X-Forwarded-For`), and the limits themselves, which live
//! in `shared::accounts::limits` (shared by every api process on the fleet).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
pub use shared::accounts::limits::bucket;
use shared::accounts::limits::{CountedAttempt, RateLimiter};

/// The addresses whose `X-Forwarded-For` is believed (`PAN_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

/// A `PAN_TRUSTED_PROXIES` entry that is neither an IP address nor a CIDR block.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an IP address or a CIDR block (e.g. 10.0.0.7 or 10.0.0.0/8)")]
pub struct BadProxy(String);

impl FromStr for TrustedProxies {
    type Err = BadProxy;

    /// Comma- (or space-) separated IPs and CIDR blocks; empty: none.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>().or_else(|_| p.parse::<IpAddr>().map(IpNet::from)).map_err(|_| BadProxy(p.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the TCP peer, unless the peer is a trusted
    /// proxy; then the right-most `X-Forwarded-For` address that is not a
    /// trusted proxy. Each proxy appends the address it got the request from,
    /// so everything left of the first untrusted address (walking from the
    /// right) was written by that client and may be made up. When every
    /// listed address is a trusted proxy, the left-most one is the client;
    /// an entry that is not an address stops the walk at the proxy that
    /// passed it on.
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        let entries: Vec<&str> = forwarded_for.flat_map(|h| h.split(',')).collect();
        for entry in entries.iter().rev() {
            let Some(ip) = parse_forwarded(entry) else { break };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port
/// (`1.2.3.4:5678`, `[2001:db8::1]:443`) or in brackets, as some proxies write it.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse::<IpAddr>().ok())?;
    Some(ip.to_canonical())
}

/// The rate limits, and how the api tells who the client is.
pub struct RateLimits {
    limiter: RateLimiter,
    trusted: TrustedProxies,
}

impl RateLimits {
    /// `limiter`'s limits, for clients told apart by `trusted`.
    pub fn new(limiter: RateLimiter, trusted: TrustedProxies) -> Self {
        RateLimits { limiter, trusted }
    }

    /// The address of the client that sent `req` (see [`TrustedProxies::client_ip`]).
    pub fn client_ip(&self, req: &poem::Request) -> IpAddr {
        // pan listens on TCP only; anything else shares one bucket.
        let peer = req.remote_addr().as_socket_addr().map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |a| a.ip());
        let headers = req.headers().get_all("x-forwarded-for");
        self.trusted.client_ip(peer, headers.iter().filter_map(|v| v.to_str().ok()))
    }

    /// Counts a signin attempt by `req`'s client as `username`.
    pub async fn signin(&self, req: &poem::Request, username: &str) -> shared::Result<()> {
        self.limiter.signin(self.client_ip(req), username).await
    }

    /// Counts a signup attempt by `req`'s client.
    pub async fn signup(&self, req: &poem::Request) -> shared::Result<()> {
        self.limiter.signup(self.client_ip(req)).await
    }

    /// Counts a password attempt on share link `link` by `req`'s client as
    /// wrong until forgiven.
    pub async fn share_password(&self, req: &poem::Request, link: &str) -> shared::Result<CountedAttempt> {
        self.limiter.share_password(self.client_ip(req), link).await
    }

    /// Counts a wrong app password sent by `req`'s client as `username`
    /// (`TooMany` past the limit); right ones are never counted.
    pub async fn wrong_app_password(&self, req: &poem::Request, username: &str) -> shared::Result<()> {
        self.limiter.wrong_app_password(self.client_ip(req), username).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_proxies_parse_ips_and_blocks() {
        let t: TrustedProxies = "127.0.0.1, 10.0.0.0/8,::1".parse().unwrap();
        assert!(t.contains(ip("127.0.0.1")));
        assert!(t.contains(ip("10.200.0.1")));
        assert!(t.contains(ip("::1")));
        assert!(t.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6 is the IPv4 address");
        assert!(!t.contains(ip("11.0.0.1")));
        assert!("".parse::<TrustedProxies>().unwrap().0.is_empty());
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.example".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_peers() {
        let t: TrustedProxies = "127.0.0.1,10.0.0.0/8".parse().unwrap();
        let client = |peer: &str, xff: &[&str]| t.client_ip(ip(peer), xff.iter().copied());
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(client("203.0.113.9", &["198.51.100.1"]), ip("203.0.113.9"));
        // A trusted peer: the right-most untrusted entry.
        assert_eq!(client("127.0.0.1", &["198.51.100.1"]), ip("198.51.100.1"));
        assert_eq!(client("127.0.0.1", &["198.51.100.1, 10.1.1.1"]), ip("198.51.100.1"));
        assert_eq!(client("127.0.0.1", &["198.51.100.1", "10.1.1.1"]), ip("198.51.100.1"), "several headers");
        // What the client wrote itself (left of its own address) is ignored.
        assert_eq!(client("127.0.0.1", &["1.1.1.1, 198.51.100.1"]), ip("198.51.100.1"));
        // Ports and brackets.
        assert_eq!(client("127.0.0.1", &["198.51.100.1:5555"]), ip("198.51.100.1"));
        assert_eq!(client("127.0.0.1", &["[2001:db8::1]:443"]), ip("2001:db8::1"));
        assert_eq!(client("127.0.0.1", &["[2001:db8::1]"]), ip("2001:db8::1"));
        // Only proxies listed: the left-most; garbage: the proxy that passed it on; none: the peer.
        assert_eq!(client("127.0.0.1", &["10.0.0.2, 10.0.0.3"]), ip("10.0.0.2"));
        assert_eq!(client("127.0.0.1", &["198.51.100.1, junk, 10.0.0.3"]), ip("10.0.0.3"));
        assert_eq!(client("127.0.0.1", &[]), ip("127.0.0.1"));
    }
}
