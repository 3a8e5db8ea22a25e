//! Rate limits on signin, signup and share-link passwords, drawn from the
//! deployment's [`RateBuckets`]: one process's on the embedded default,
//! Redis's on the fleet, so a limit of N allows N in all however many api
//! processes a client's requests reach.
//!
//! Signin is limited per client address and per (username, client
//! address); signup per client address. A limit per username alone is
//! deliberately absent: anyone could then lock anyone out of their account
//! by failing to sign in as them. Every attempt counts, right or wrong: each
//! one costs an Argon2 hash, which is what a flood would exhaust.
//!
//! Share-link passwords are limited differently: only wrong passwords count
//! (an attempt takes a cell before the password is checked, so concurrent
//! attempts cannot overshoot, and a right password gives it back), per
//! (link, client address) and per link at ten times that. The per-link
//! limit stops a guesser spread over many addresses; while it holds, it also
//! refuses the link's rightful holders who have not unlocked it yet (those
//! who have keep their access token): the price of stopping a distributed
//! guesser.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::domain::error::{Error, ErrorCode, Result};
use crate::runtime::background::Background;
use crate::stores::limits::{RateBuckets, SlotTable};

/// How many more wrong passwords a link takes in a minute than one address
/// may try on it.
pub const PER_LINK_FACTOR: u32 = 10;

/// Attempts per minute each limit allows (0: no limit).
#[derive(Debug, Clone, Copy, Default)]
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
    /// Wrong app passwords per client address, and per username and client
    /// address (`PAN_APP_PASSWORD_RATE`); per address, ten times as many.
    pub app_password: u32,
}

/// The rate limits of a deployment.
#[derive(Clone)]
pub struct RateLimiter {
    buckets: Arc<dyn RateBuckets>,
    settings: RateSettings,
}

/// The limiter key of a client address (also the per-address connection
/// cap's). An IPv6 client is keyed by its /64: one host commonly holds a
/// whole /64, and keying single addresses would give it 2^64 budgets.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// A username as part of a key: the hex of the first 16 bytes of its
/// SHA-256. Names may be up to 1 KiB long; the digest keeps every key small,
/// whatever a flood of made-up names sends.
fn name_key(username: &str) -> String {
    hex::encode(&Sha256::digest(username.as_bytes())[..16])
}

impl RateLimiter {
    /// Limits of `settings` on `buckets`.
    pub(crate) fn new(buckets: Arc<dyn RateBuckets>, settings: RateSettings) -> Self {
        RateLimiter { buckets, settings }
    }

    /// One cell of `key`'s bucket of `per_minute` (none when 0), or
    /// `TooMany` saying `what`.
    async fn take(&self, key: &str, per_minute: u32, what: &str) -> Result<()> {
        if per_minute == 0 {
            return Ok(());
        }
        self.buckets.take(key, per_minute).await?.map_err(|wait| limited(what, wait))
    }

    /// Counts a signin attempt by `client` as `username`; `TooMany` past
    /// either limit.
    pub async fn signin(&self, client: IpAddr, username: &str) -> Result<()> {
        let ip = bucket(client);
        self.take(&format!("signin:{ip}"), self.settings.signin, "too many signin attempts from your address").await?;
        self.take(
            &format!("signin-user:{ip}:{}", name_key(username)),
            self.settings.signin_user,
            "too many signin attempts for this username from your address",
        )
        .await
    }

    /// Counts a signup attempt by `client`; `TooMany` past the limit.
    pub async fn signup(&self, client: IpAddr) -> Result<()> {
        self.take(&format!("signup:{}", bucket(client)), self.settings.signup, "too many signups from your address")
            .await
    }

    /// Counts a password attempt on share link `link` by `client` as wrong
    /// until the caller [forgives](ShareAttempt::forgive) it (the password
    /// was right); `TooMany` past the limit per (link, address) or per link,
    /// and then nothing is counted.
    pub async fn share_password(&self, client: IpAddr, link: &str) -> Result<CountedAttempt> {
        let per_address = self.settings.share_password;
        let per_link = per_address.saturating_mul(PER_LINK_FACTOR);
        let link_key = format!("share:{}", name_key(link));
        let address_key = format!("share-ip:{}:{}", bucket(client), name_key(link));
        self.take(&address_key, per_address, "too many wrong passwords for this link from your address").await?;
        if let Err(e) = self.take(&link_key, per_link, "too many wrong passwords for this link").await {
            // Refused, so not counted against the address either; if giving
            // its cell back fails, the refusal still stands.
            if per_address > 0
                && let Err(back) = self.buckets.give_back(&address_key, per_address).await
            {
                tracing::warn!(error = %back, "giving back a share-password cell failed");
            }
            return Err(e);
        }
        let cells = vec![(address_key, per_address), (link_key, per_link)];
        Ok(CountedAttempt { limiter: self.clone(), cells })
    }

    /// Counts a wrong app password sent by `client` as `username`; a right
    /// one is never counted (WebDAV and tus clients send theirs on every
    /// request, many at once: counting each until it proved right made a
    /// burst of right ones look like guessing). `TooMany` past the limit per
    /// (username, address) or per address, and then nothing is counted.
    /// Checking first costs one SHA-256 and one lookup, and an app password
    /// is 128 random bits: a few guesses more in a burst change nothing.
    pub async fn wrong_app_password(&self, client: IpAddr, username: &str) -> Result<()> {
        let per_name = self.settings.app_password;
        let per_address = per_name.saturating_mul(PER_LINK_FACTOR);
        let ip = bucket(client);
        let name_key = format!("app-user:{ip}:{}", name_key(username));
        let address_key = format!("app:{ip}");
        self.take(&name_key, per_name, "too many wrong app passwords for this username from your address").await?;
        if let Err(e) = self.take(&address_key, per_address, "too many wrong app passwords from your address").await {
            if per_name > 0
                && let Err(back) = self.buckets.give_back(&name_key, per_name).await
            {
                tracing::warn!(error = %back, "giving back an app-password cell failed");
            }
            return Err(e);
        }
        Ok(())
    }
}

/// A password attempt (a share link's, an app password), counted as wrong
/// until forgiven.
pub struct CountedAttempt {
    limiter: RateLimiter,
    /// The buckets it took a cell from, with their limits (0: none taken).
    cells: Vec<(String, u32)>,
}

impl CountedAttempt {
    /// The password was right: the attempt is not held against anyone.
    pub async fn forgive(self) -> Result<()> {
        for (key, per_minute) in &self.cells {
            if *per_minute > 0 {
                self.limiter.buckets.give_back(key, *per_minute).await?;
            }
        }
        Ok(())
    }
}

/// How long a user's slot is held unless renewed: a process that dies
/// holding one frees it this long after.
pub const SLOT_TTL: Duration = Duration::from_secs(15);
/// How often a held slot is renewed.
const SLOT_RENEW: Duration = Duration::from_secs(5);

/// Caps on what one user may have in flight at once (chunk bodies, single
/// uploads), counted in the deployment's [`SlotTable`]: per process on the
/// embedded default, for every api process together on the fleet.
#[derive(Clone)]
pub struct UserSlots {
    table: Arc<dyn SlotTable>,
    background: Background,
    /// What the slots are for, in their keys (`chunks`, `uploads`).
    kind: &'static str,
    per_user: u32,
}

/// Whose bodies a slot counts.
#[derive(Debug, Clone, Copy)]
pub enum SlotOwner<'a> {
    /// A user's own (by id).
    User(i64),
    /// The strangers' sending through one upload link: slots of the link's
    /// own, so they can never take the owner's.
    UploadLink(&'a str),
}

impl UserSlots {
    pub(crate) fn new(table: Arc<dyn SlotTable>, background: Background, kind: &'static str, per_user: u32) -> Self {
        UserSlots { table, background, kind, per_user: per_user.max(1) }
    }

    /// Slots counted in this process only, with their own tracker (for
    /// tests and tools; a deployment's come from `Services::user_slots`).
    pub fn local(kind: &'static str, per_user: u32) -> Self {
        Self::new(Arc::new(crate::stores::limits::MemorySlots::default()), Background::default(), kind, per_user)
    }

    /// One of `owner`'s slots, or `None` when they hold all of theirs.
    /// Held (and renewed in the background) until the [`UserSlot`] is dropped.
    pub async fn take(&self, owner: SlotOwner<'_>) -> Result<Option<UserSlot>> {
        let key = match owner {
            SlotOwner::User(user) => format!("{}:{user}", self.kind),
            SlotOwner::UploadLink(link) => format!("{}:link:{link}", self.kind),
        };
        let holder = crate::random_hex(12);
        if !self.table.take_slot(&key, &holder, self.per_user, SLOT_TTL).await? {
            return Ok(None);
        }
        let renewer = {
            let (table, key, holder) = (self.table.clone(), key.clone(), holder.clone());
            self.background.spawn(async move {
                loop {
                    tokio::time::sleep(SLOT_RENEW).await;
                    if let Err(e) = table.renew_slot(&key, &holder, SLOT_TTL).await {
                        tracing::warn!(error = %e, slot = %key, "renewing a slot failed; retrying");
                    }
                }
            })
        };
        Ok(Some(UserSlot { slots: self.clone(), key, holder, renewer }))
    }
}

/// One held slot of a user; given back by [`UserSlot::release`], or in
/// the background when dropped.
pub struct UserSlot {
    slots: UserSlots,
    key: String,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl UserSlot {
    /// Gives the slot back now, before the caller answers: a client that
    /// sends its next request as soon as it has the answer finds the slot
    /// free (a give-back left to a background task could come after it).
    pub async fn release(mut self) {
        self.renewer.abort();
        let (key, holder) = (std::mem::take(&mut self.key), std::mem::take(&mut self.holder));
        if let Err(e) = self.slots.table.give_slot_back(&key, &holder).await {
            tracing::warn!(error = %e, slot = %key, "giving a slot back failed; it runs out by itself");
        }
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.key.is_empty() {
            return; // released already
        }
        let (table, key, holder) =
            (self.slots.table.clone(), std::mem::take(&mut self.key), std::mem::take(&mut self.holder));
        // Given back in the background (a drop cannot wait), by the tracker
        // shutdown waits for; if that fails the slot runs out by itself.
        self.slots.background.spawn(async move {
            if let Err(e) = table.give_slot_back(&key, &holder).await {
                tracing::warn!(error = %e, slot = %key, "giving a slot back failed; it runs out by itself");
            }
        });
    }
}

/// `TooMany` `RATE_LIMITED` after `wait` (in whole seconds, at least 1).
fn limited(what: &str, wait: Duration) -> Error {
    let retry_after = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    Error::TooMany { code: ErrorCode::RateLimited, message: format!("{what}; retry in {retry_after} s"), retry_after }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::limits::MemoryBuckets;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limiter(settings: RateSettings) -> (RateLimiter, Arc<MemoryBuckets>) {
        let buckets = Arc::new(MemoryBuckets::default());
        (RateLimiter::new(buckets.clone(), settings), buckets)
    }

    /// IPv6 clients share a bucket per /64; IPv4-mapped addresses are IPv4.
    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(bucket(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(bucket(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    /// Signin is limited per address and per (name, address), never per name alone.
    #[tokio::test]
    async fn signin_is_limited_per_address_and_per_name_and_address() {
        let (limits, _) = limiter(RateSettings { signin: 5, signin_user: 2, ..Default::default() });
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert!(limits.signin(a, "alice").await.is_ok());
        assert!(limits.signin(a, "alice").await.is_ok());
        let Err(Error::TooMany { code, retry_after, .. }) = limits.signin(a, "alice").await else {
            panic!("third attempt for alice from a must be limited")
        };
        assert_eq!(code, ErrorCode::RateLimited);
        // 2 per minute: the next cell comes in 30 s.
        assert!((1..=30).contains(&retry_after), "{retry_after}");
        // Alice from elsewhere, and bob from the same address, are not locked out.
        assert!(limits.signin(b, "alice").await.is_ok());
        assert!(limits.signin(a, "bob").await.is_ok());
        // The address's own budget (5) is spent: 3 above plus bob's plus one.
        assert!(limits.signin(a, "carol").await.is_ok());
        assert!(limits.signin(a, "dave").await.is_err());
    }

    /// Only wrong app passwords count, per (username, address) and ten
    /// times that per address; one username locked out from an address
    /// leaves others and other addresses alone.
    #[tokio::test]
    async fn app_passwords_count_only_wrong_ones_per_name_and_address_and_ten_times_that_per_address() {
        let (limits, _) = limiter(RateSettings { app_password: 2, ..Default::default() });
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        // A right password is never counted (the caller checks it first).
        limits.wrong_app_password(a, "alice").await.unwrap();
        limits.wrong_app_password(a, "alice").await.unwrap();
        let Err(Error::TooMany { code, .. }) = limits.wrong_app_password(a, "alice").await else {
            panic!("a third wrong app password for alice from a must be limited")
        };
        assert_eq!(code, ErrorCode::RateLimited);
        assert!(limits.wrong_app_password(b, "alice").await.is_ok(), "another address is not locked out");
        // The address's budget is 20 wrong ones across names: 2 spent above.
        for i in 0..18 {
            limits.wrong_app_password(a, &format!("user{}", i / 2)).await.unwrap();
        }
        assert!(limits.wrong_app_password(a, "zed").await.is_err(), "the address's budget is spent");
    }

    /// Only wrong share passwords count, per (link, address) and ten times
    /// that per link.
    #[tokio::test]
    async fn share_passwords_count_only_wrong_ones_per_link_and_address_and_ten_times_that_per_link() {
        let (limits, _) = limiter(RateSettings { share_password: 2, ..Default::default() });
        let link = "L".repeat(22);
        // The right password, again and again, is never held against anyone.
        for _ in 0..50 {
            limits.share_password(ip("192.0.2.1"), &link).await.unwrap().forgive().await.unwrap();
        }
        // Two wrong ones per address, then 429 there, even for the right one.
        drop(limits.share_password(ip("192.0.2.1"), &link).await.unwrap());
        drop(limits.share_password(ip("192.0.2.1"), &link).await.unwrap());
        let Err(Error::TooMany { retry_after, .. }) = limits.share_password(ip("192.0.2.1"), &link).await else {
            panic!("a third wrong password from one address must wait")
        };
        assert!((1..=30).contains(&retry_after), "{retry_after}");
        // Other links from that address are not affected.
        assert!(limits.share_password(ip("192.0.2.1"), &"M".repeat(22)).await.is_ok());
        // Nine more addresses make twenty wrong ones: the link is closed to everyone.
        for i in 2..=10 {
            for _ in 0..2 {
                drop(limits.share_password(ip(&format!("192.0.2.{i}")), &link).await.unwrap());
            }
        }
        assert!(limits.share_password(ip("198.51.100.7"), &link).await.is_err(), "the per-link limit holds");
        // A refused attempt is not counted: the fresh address still has its own two.
        assert!(limits.share_password(ip("198.51.100.7"), &"M".repeat(22)).await.is_ok());
    }

    /// A user holds at most their slots; a dropped slot comes back (given
    /// back in the background); other users are not affected; a key with
    /// no holder is forgotten.
    #[tokio::test]
    async fn user_slots_cap_each_user_and_come_back_when_dropped() {
        let table = Arc::new(crate::stores::limits::MemorySlots::default());
        let background = Background::default();
        let slots = UserSlots::new(table.clone(), background.clone(), "chunks", 2);
        let a1 = slots.take(SlotOwner::User(1)).await.unwrap().expect("first");
        let _a2 = slots.take(SlotOwner::User(1)).await.unwrap().expect("second");
        assert!(slots.take(SlotOwner::User(1)).await.unwrap().is_none(), "user 1 is at 2");
        let b1 = slots.take(SlotOwner::User(2)).await.unwrap().expect("user 2 has their own");
        drop(a1);
        // The give-back runs on the tracker: let it run.
        let mut a3 = None;
        for _ in 0..100 {
            a3 = slots.take(SlotOwner::User(1)).await.unwrap();
            if a3.is_some() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(a3.is_some(), "the dropped slot came back");
        drop((a3, b1, _a2));
        for _ in 0..100 {
            if table.keys() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(table.keys(), 0, "no holder, no key");
    }

    /// A limit of 0 is no limit, and keeps no state.
    #[tokio::test]
    async fn zero_means_no_limit() {
        let (limits, buckets) = limiter(RateSettings::default());
        for _ in 0..1000 {
            assert!(limits.signin(ip("192.0.2.1"), "alice").await.is_ok());
            assert!(limits.signup(ip("192.0.2.1")).await.is_ok());
        }
        assert!(buckets.is_empty());
    }
}
