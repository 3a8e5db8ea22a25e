//! Rate limits on signin and signup, and who "the client" is for them.
//!
//! Signin is limited per client address and per (username, client address);
//! signup per client address. A limit per username alone is deliberately
//! absent: anyone could then lock anyone out of their account by failing to
//! sign in as them. Every attempt counts, right or wrong: each one costs an
//! Argon2 hash, which is what a flood would exhaust.
//!
//! The limiters are GCRA buckets (`governor`): a limit of N per minute lets
//! a client spend N at once, then gives one back every 60/N seconds.
//!
//! Share-link passwords are limited differently: only wrong passwords count
//! ([`Strikes`]), per (link, client address) and per link at ten times that.
//! The per-link limit stops a guesser spread over many addresses; while it
//! holds, it also refuses the link's rightful holders who have not unlocked
//! it yet (those who have keep their access token): the price of stopping a
//! distributed guesser.
//!
//! The state lives in this process. In a fleet, each `api` process counts on
//! its own: behind a load balancer spreading one client over K processes,
//! that client gets up to K times the budget.

use shared::ErrorCode;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use sha2::{Digest, Sha256};

/// How often stale keys are dropped from the limiters, so that their maps
/// hold only clients seen within about the last two minutes.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A username as a limiter key: the first 16 bytes of its SHA-256. Names may
/// be up to 1 KiB long; the digest keeps every key small, whatever a flood of
/// made-up names sends.
type NameKey = [u8; 16];

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

/// The limiter key of a client address (also the per-address connection
/// cap's, see `connections`). An IPv6 client is keyed by its /64:
/// one host commonly holds a whole /64, and keying single addresses would
/// give it 2^64 budgets.
pub(crate) fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

fn name_key(username: &str) -> NameKey {
    let digest = Sha256::digest(username.as_bytes());
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// A limit of `per_minute` (a burst of as many, then one every 60/N s);
/// none when 0.
fn limiter<K: Clone + std::hash::Hash + Eq>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_minute(n)))
}

/// The signin and signup limiters of this process.
pub struct RateLimits {
    signin_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    signin_user: Option<DefaultKeyedRateLimiter<(IpAddr, NameKey)>>,
    signup_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    share_ip: Option<Strikes<(IpAddr, String)>>,
    share_link: Option<Strikes<String>>,
    trusted: TrustedProxies,
    last_sweep: Mutex<Instant>,
}

/// The settings of [`RateLimits`]: attempts per minute (0: no limit).
#[derive(Debug, Clone, Default)]
pub struct RateSettings {
    /// Signin attempts per client address (`PAN_SIGNIN_RATE`).
    pub signin: u32,
    /// Signin attempts per username and client address (`PAN_SIGNIN_USER_RATE`).
    pub signin_user: u32,
    /// Signups per client address (`PAN_SIGNUP_RATE`).
    pub signup: u32,
    /// Wrong share-link passwords per link and client address
    /// (`PAN_SHARE_PASSWORD_RATE`); per link, ten times as many.
    pub share_password: u32,
    /// Peers whose `X-Forwarded-For` is believed (`PAN_TRUSTED_PROXIES`).
    pub trusted: TrustedProxies,
}

impl RateLimits {
    /// Limiters for these settings.
    pub fn new(s: RateSettings) -> Self {
        RateLimits {
            signin_ip: limiter(s.signin),
            signin_user: limiter(s.signin_user),
            signup_ip: limiter(s.signup),
            share_ip: Strikes::new(s.share_password),
            share_link: Strikes::new(s.share_password.saturating_mul(PER_LINK_FACTOR)),
            trusted: s.trusted,
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// The address of the client that sent `req` (see [`TrustedProxies::client_ip`]).
    pub fn client_ip(&self, req: &poem::Request) -> IpAddr {
        // pan listens on TCP only; anything else shares one bucket.
        let peer = req.remote_addr().as_socket_addr().map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |a| a.ip());
        let headers = req.headers().get_all("x-forwarded-for");
        self.trusted.client_ip(peer, headers.iter().filter_map(|v| v.to_str().ok()))
    }

    /// Counts a signin attempt by `client` as `username`; `TooMany` past
    /// either limit.
    pub fn signin(&self, client: IpAddr, username: &str) -> Result<(), shared::Error> {
        self.sweep();
        let ip = bucket(client);
        check(self.signin_ip.as_ref(), &ip, "too many signin attempts from your address")?;
        check(
            self.signin_user.as_ref(),
            &(ip, name_key(username)),
            "too many signin attempts for this username from your address",
        )
    }

    /// Counts a signup attempt by `client`; `TooMany` past the limit.
    pub fn signup(&self, client: IpAddr) -> Result<(), shared::Error> {
        self.sweep();
        check(self.signup_ip.as_ref(), &bucket(client), "too many signups from your address")
    }

    /// Counts a password attempt on share link `link` by `client` as wrong
    /// until the caller [forgives](ShareAttempt::forgive) it (the password was
    /// right); `TooMany` past the limit per (link, address) or per link, and
    /// then nothing is counted.
    pub fn share_password(&self, client: IpAddr, link: &str) -> Result<ShareAttempt<'_>, shared::Error> {
        self.sweep();
        let key = (bucket(client), link.to_owned());
        if let Some(s) = &self.share_ip {
            s.take(&key).map_err(|wait| limited("too many wrong passwords for this link from your address", wait))?;
        }
        if let Some(s) = &self.share_link
            && let Err(wait) = s.take(&key.1)
        {
            if let Some(s) = &self.share_ip {
                s.give_back(&key);
            }
            return Err(limited("too many wrong passwords for this link", wait));
        }
        Ok(ShareAttempt { limits: self, key })
    }

    /// Drops keys whose bucket is full again (indistinguishable from a key
    /// never seen), at most once per [`SWEEP_EVERY`]: the maps stay as large
    /// as the set of recent clients, not of every client ever seen.
    fn sweep(&self) {
        let Ok(mut last) = self.last_sweep.try_lock() else { return };
        if last.elapsed() < SWEEP_EVERY {
            return;
        }
        *last = Instant::now();
        drop(last);
        for l in self.signin_ip.iter().chain(&self.signup_ip) {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(s) = &self.share_ip {
            s.sweep();
        }
        if let Some(s) = &self.share_link {
            s.sweep();
        }
        if let Some(l) = &self.signin_user {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// How many keys the limiters hold (signin per address, per username and
    /// address, signup per address), for tests and diagnostics.
    pub fn len(&self) -> (usize, usize, usize) {
        (
            self.signin_ip.as_ref().map_or(0, |l| l.len()),
            self.signin_user.as_ref().map_or(0, |l| l.len()),
            self.signup_ip.as_ref().map_or(0, |l| l.len()),
        )
    }
}

/// How many more wrong passwords a link takes in a minute than one address
/// may try on it.
pub const PER_LINK_FACTOR: u32 = 10;

/// A share-link password attempt, counted as wrong until forgiven.
pub struct ShareAttempt<'a> {
    limits: &'a RateLimits,
    key: (IpAddr, String),
}

impl ShareAttempt<'_> {
    /// The password was right: the attempt is not held against the address
    /// or the link.
    pub fn forgive(self) {
        if let Some(s) = &self.limits.share_ip {
            s.give_back(&self.key);
        }
        if let Some(s) = &self.limits.share_link {
            s.give_back(&self.key.1);
        }
    }
}

/// A GCRA limit of `N` a minute per key (a burst of `N`, then one back every
/// 60/N s), like `governor`'s, that can also give a cell back: an attempt
/// takes one before the password is checked (so concurrent attempts cannot
/// overshoot) and the right password returns it, so only wrong ones count.
struct Strikes<K> {
    /// 60 s / N: how long one cell takes to come back.
    interval: Duration,
    /// Per key, the theoretical arrival time: when its bucket is full again.
    /// A `std` mutex: held for a map lookup, never across an await.
    tats: Mutex<HashMap<K, Instant>>,
}

impl<K: Clone + std::hash::Hash + Eq> Strikes<K> {
    /// `per_minute` a minute; none when 0.
    fn new(per_minute: u32) -> Option<Self> {
        (per_minute > 0)
            .then(|| Strikes { interval: Duration::from_secs(60) / per_minute, tats: Mutex::new(HashMap::new()) })
    }

    /// Takes a cell from `key`'s bucket, or the time until one is back.
    fn take(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        let tat = tats.get(key).copied().unwrap_or(now).max(now);
        let next = tat + self.interval;
        let limit = now + Duration::from_secs(60);
        if next > limit {
            return Err(next - limit);
        }
        tats.insert(key.clone(), next);
        Ok(())
    }

    /// Gives a cell taken by [`Strikes::take`] back.
    fn give_back(&self, key: &K) {
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tat) = tats.get_mut(key) {
            *tat = tat.checked_sub(self.interval).unwrap_or(*tat);
        }
    }

    /// Drops keys whose bucket is full again.
    fn sweep(&self) {
        let now = Instant::now();
        self.tats.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, tat| *tat > now);
    }
}

/// `TooMany` `RATE_LIMITED` after `wait` (in whole seconds, at least 1).
fn limited(what: &str, wait: Duration) -> shared::Error {
    let retry_after = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    shared::Error::TooMany {
        code: ErrorCode::RateLimited,
        message: format!("{what}; retry in {retry_after} s"),
        retry_after,
    }
}

/// One cell from `key`'s bucket, or `TooMany` with the whole seconds until
/// the next one (at least 1).
fn check<K: Clone + std::hash::Hash + Eq>(
    limiter: Option<&DefaultKeyedRateLimiter<K>>,
    key: &K,
    what: &str,
) -> Result<(), shared::Error> {
    let Some(limiter) = limiter else { return Ok(()) };
    limiter.check_key(key).map_err(|not_until| limited(what, not_until.wait_time_from(limiter.clock().now())))
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

    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(bucket(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(bucket(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn signin_is_limited_per_address_and_per_name_and_address() {
        let limits = RateLimits::new(RateSettings { signin: 5, signin_user: 2, ..Default::default() });
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert!(limits.signin(a, "alice").is_ok());
        assert!(limits.signin(a, "alice").is_ok());
        let Err(shared::Error::TooMany { code, retry_after, .. }) = limits.signin(a, "alice") else {
            panic!("third attempt for alice from a must be limited")
        };
        assert_eq!(code, ErrorCode::RateLimited);
        // 2 per minute: the next cell comes in 30 s.
        assert!((1..=30).contains(&retry_after), "{retry_after}");
        // Alice from elsewhere, and bob from the same address, are not locked out.
        assert!(limits.signin(b, "alice").is_ok());
        assert!(limits.signin(a, "bob").is_ok());
        // The address's own budget (5) is spent: 3 above plus bob's plus one.
        assert!(limits.signin(a, "carol").is_ok());
        assert!(limits.signin(a, "dave").is_err());
        assert_eq!(limits.len().0, 2);
    }

    #[test]
    fn share_passwords_count_only_wrong_ones_per_link_and_address_and_ten_times_that_per_link() {
        let limits = RateLimits::new(RateSettings { share_password: 2, ..Default::default() });
        let link = "L".repeat(22);
        // The right password, again and again, is never held against anyone.
        for _ in 0..50 {
            limits.share_password(ip("192.0.2.1"), &link).unwrap().forgive();
        }
        // Two wrong ones per address, then 429 there, even for the right one.
        drop(limits.share_password(ip("192.0.2.1"), &link).unwrap());
        drop(limits.share_password(ip("192.0.2.1"), &link).unwrap());
        let Err(shared::Error::TooMany { retry_after, .. }) = limits.share_password(ip("192.0.2.1"), &link) else {
            panic!("a third wrong password from one address must wait")
        };
        assert!((1..=30).contains(&retry_after), "{retry_after}");
        // Other links from that address are not affected.
        assert!(limits.share_password(ip("192.0.2.1"), &"M".repeat(22)).is_ok());
        // Nine more addresses make twenty wrong ones: the link is closed to everyone.
        for i in 2..=10 {
            for _ in 0..2 {
                drop(limits.share_password(ip(&format!("192.0.2.{i}")), &link).unwrap());
            }
        }
        assert!(limits.share_password(ip("198.51.100.7"), &link).is_err(), "the per-link limit holds");
        // A refused attempt is not counted: the fresh address still has its own two.
        assert!(limits.share_password(ip("198.51.100.7"), &"M".repeat(22)).is_ok());
    }

    #[test]
    fn zero_means_no_limit() {
        let limits = RateLimits::new(RateSettings::default());
        for _ in 0..1000 {
            assert!(limits.signin(ip("192.0.2.1"), "alice").is_ok());
            assert!(limits.signup(ip("192.0.2.1")).is_ok());
        }
        assert_eq!(limits.len(), (0, 0, 0));
    }
}
