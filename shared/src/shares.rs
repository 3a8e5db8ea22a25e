//! Share links: make, open (expiry, password, download limit), find what a
//! path names inside a shared folder, and stream a shared folder as a zip.
//!
//! A link is 128 random bits (22 URL-safe characters): it names neither the
//! owner nor the content. A password-protected link is opened with an
//! access token (`kid.expiry.signature`, an HMAC over the link, the expiry
//! and the password's hash with the share key `kid`) that `unlock` hands
//! out for the right password, so `<video>` and `<a download>` can carry it
//! in the URL. Tokens made before keys had ids (`expiry.signature`) are
//! checked with the old key while it is kept.

use base64::Engine;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::{Share, ShareTarget, StoredFile, TreeItem, UploadLink, User, UserFile};
use std::sync::Arc;

use crate::accounts::HashingPool;
use crate::files::Files;
use crate::files::links::{Keys, LEGACY_KID, Purpose};
use crate::stores::meta::{MetaRepo, PageRequest};
use crate::tree::{ListCursor, PathCache, Tree, split_path};

/// Length of a link id.
pub const LINK_LEN: usize = 22;
/// Most bytes of member paths one zip holds (each is kept until the zip's
/// central directory is written).
pub const ZIP_MAX_PATH_BYTES: usize = 16 << 20;
/// How long an unlocked link stays open to its holder, in seconds.
pub use crate::files::links::ACCESS_TTL;

/// A fresh link id.
pub fn new_link() -> String {
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A link id as a client sent it; anything malformed is an unknown link.
pub fn parse_link(s: &str) -> Result<&str> {
    if s.len() == LINK_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(s)
    } else {
        Err(Error::ShareNotFound)
    }
}

/// What a new link shares and how.
#[derive(Debug, Clone)]
pub struct NewShare {
    /// The id of the caller's live file entry or folder.
    pub target: String,
    /// Its password, if any (only its Argon2id hash is kept).
    pub password: Option<String>,
    /// Seconds until it stops working: 0 never; absent: the installation's
    /// default (`PAN_SHARE_DAYS`).
    pub expires_in: Option<i64>,
    /// How many downloads it allows, if limited.
    pub max_downloads: Option<i64>,
}

/// What a new upload link allows.
#[derive(Debug, Clone)]
pub struct NewUploadLink {
    /// The id of the caller's live folder uploads land in (`None`: the root).
    pub folder: Option<String>,
    /// Its password, if any (only its Argon2id hash is kept).
    pub password: Option<String>,
    /// Seconds until it stops working: 0 never; absent: the installation's
    /// default (`PAN_SHARE_DAYS`).
    pub expires_in: Option<i64>,
    /// The most bytes it takes in all, if limited.
    pub max_bytes: Option<i64>,
}

/// An open link: the link, its owner, and what it shares (live).
#[derive(Debug, Clone)]
pub struct Opened {
    /// The link.
    pub share: Share,
    /// Its owner.
    pub owner: User,
    /// The shared file or folder.
    pub root: TreeItem,
}

fn mac(key: &[u8], share: &Share, expires: i64) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    let password = share.password_hash.as_deref().unwrap_or("");
    m.update(format!("pan-share\n{}\n{expires}\n{password}", share.link).as_bytes());
    m
}

/// One file of a zip: its path inside the archive, content and time.
#[derive(Debug, Clone)]
pub struct ZipMember {
    /// `a/b/c.txt`, relative to the zipped folder; folders end with `/`.
    pub path: String,
    /// The content (`None` for a folder).
    pub content: Option<StoredFile>,
    /// Modification time (Unix seconds).
    pub modified: i64,
}

/// The share-link use cases: every rule of a link (its default expiry,
/// password, download limit and access tokens) lives here.
#[derive(Clone)]
pub struct Shares {
    pub(crate) repo: Arc<dyn MetaRepo>,
    pub(crate) files: Files,
    pub(crate) tree: Tree,
    pub(crate) hashing: HashingPool,
    pub(crate) keys: Keys,
    /// Days a new link works by default (`PAN_SHARE_DAYS`; 0: forever).
    pub(crate) default_days: u64,
    /// Most entries in one zip of a shared folder (`PAN_ZIP_MAX_ENTRIES`).
    pub(crate) zip_max_entries: usize,
    /// Upload-link passwords this process found right lately: see
    /// [`VerifiedPasswords`].
    pub(crate) verified: Arc<VerifiedPasswords>,
}

/// Upload-link passwords found right, for [`UPLOAD_PASSWORD_TTL`]: a tus
/// client sends the password with every request of an upload, and Argon2
/// on each (tens of milliseconds of a core) would let a page's PATCHes, or
/// a stranger's, cost far more than their bytes. Kept by a SHA-256 of the
/// link, its stored hash and the password, so a revoked link (looked up
/// first, always) or another password never matches; in memory, at most
/// [`UPLOAD_PASSWORDS_KEPT`] of them.
#[derive(Default)]
pub struct VerifiedPasswords {
    until: std::sync::Mutex<std::collections::HashMap<[u8; 32], i64>>,
}

/// How long a right upload-link password is taken on trust (seconds).
const UPLOAD_PASSWORD_TTL: i64 = 600;
/// The most right upload-link passwords one process keeps.
const UPLOAD_PASSWORDS_KEPT: usize = 10_000;

impl VerifiedPasswords {
    fn key(link: &str, hash: &str, password: &str) -> [u8; 32] {
        use sha2::Digest;
        let mut d = Sha256::new();
        for part in [link, hash, password] {
            d.update((part.len() as u64).to_le_bytes());
            d.update(part.as_bytes());
        }
        d.finalize().into()
    }

    fn holds(&self, key: &[u8; 32], now: i64) -> bool {
        let until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        until.get(key).is_some_and(|&t| now < t)
    }

    fn remember(&self, key: [u8; 32], now: i64) {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        if until.len() >= UPLOAD_PASSWORDS_KEPT {
            until.retain(|_, t| now < *t);
            if until.len() >= UPLOAD_PASSWORDS_KEPT {
                until.clear();
            }
        }
        until.insert(key, now + UPLOAD_PASSWORD_TTL);
    }
}

impl Shares {
    /// What a new link (a share or an upload link) is made with: its
    /// password's Argon2 hash, now, and when it stops working (`expires_in`
    /// seconds on, 0: never; else `PAN_SHARE_DAYS`, 0: never).
    async fn link_terms(
        &self,
        password: Option<String>,
        expires_in: Option<i64>,
    ) -> Result<(Option<String>, i64, Option<i64>)> {
        let password_hash = match password {
            Some(p) => Some(self.hashing.hash(p).await?),
            None => None,
        };
        let now = crate::now();
        let expires_at = match expires_in {
            Some(0) => None,
            Some(secs) => Some(now + secs),
            None if self.default_days == 0 => None,
            None => Some(now + self.default_days as i64 * 86_400),
        };
        Ok((password_hash, now, expires_at))
    }

    /// Makes a link to the caller's live file or folder `n.target`.
    pub async fn create(&self, user: &User, n: NewShare) -> Result<Share> {
        let target = if self.repo.folder(user.id, &n.target).await?.is_some() {
            ShareTarget::Folder(n.target)
        } else if self.repo.user_file(user.id, &n.target).await?.is_some() {
            ShareTarget::File(n.target)
        } else {
            return Err(Error::FileNotFound);
        };
        let (password_hash, now, expires_at) = self.link_terms(n.password, n.expires_in).await?;
        let size = self.size_of(user.id, &target).await?.ok_or(Error::FileNotFound)?;
        let share = Share {
            link: new_link(),
            owner: user.id,
            target,
            password_hash,
            expires_at,
            max_downloads: n.max_downloads,
            size: Some(size),
            bytes_sent: 0,
            legacy_downloads: 0,
            created_at: now,
        };
        self.repo.create_share(&share).await?;
        Ok(share)
    }

    /// The size of what `target` names now (a folder: the total size of the
    /// live files below it); `None` when it is not live.
    async fn size_of(&self, owner: i64, target: &ShareTarget) -> Result<Option<i64>> {
        Ok(match target {
            ShareTarget::File(id) => self.repo.user_file(owner, id).await?.map(|(_, stored)| stored.filesize),
            ShareTarget::Folder(id) => match self.repo.folder_bytes(owner, id).await {
                Ok(bytes) => Some(bytes),
                Err(Error::FolderNotFound) => None,
                Err(e) => return Err(e),
            },
        })
    }

    /// A link made before downloads were counted in bytes, given its size
    /// now (its downloads so far become whole sizes sent); any other link as
    /// it is. A link whose target is not live keeps no size until it is.
    async fn sized(&self, mut share: Share) -> Result<Share> {
        if share.size.is_some() {
            return Ok(share);
        }
        if let Some(size) = self.size_of(share.owner, &share.target).await? {
            share.size = Some(size);
            share.bytes_sent = share.legacy_downloads.saturating_mul(share.unit());
            self.repo.set_share_size(&share.link, size, share.bytes_sent).await?;
            // Another process may have sized it first: read back what holds.
            if let Some(stored) = self.repo.share(&share.link).await? {
                share = stored;
            }
        }
        Ok(share)
    }

    /// An access token for a link whose password was given, and its expiry.
    async fn access_token(&self, share: &Share) -> Result<(String, i64)> {
        let key = self.keys.signing(Purpose::Share).await?;
        let expires = crate::now() + ACCESS_TTL;
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(mac(&key.secret, share, expires).finalize().into_bytes());
        Ok((format!("{}.{expires}.{sig}", key.kid), expires))
    }

    /// Whether `access` is a valid, unexpired token for `share`: signed
    /// with a share key still kept (an unknown or dropped key id is no
    /// better than a bad signature).
    async fn access_ok(&self, share: &Share, access: Option<&str>) -> Result<bool> {
        let Some(access) = access else { return Ok(false) };
        let parts: Vec<&str> = access.split('.').collect();
        let (kid, expires, sig) = match parts[..] {
            [kid, expires, sig] => (kid, expires, sig),
            [expires, sig] => (LEGACY_KID, expires, sig),
            _ => return Ok(false),
        };
        let (Ok(expires), Ok(sig)) =
            (expires.parse::<i64>(), base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig))
        else {
            return Ok(false);
        };
        let Some(key) = self.keys.verifying(Purpose::Share, kid).await? else { return Ok(false) };
        Ok(mac(&key, share, expires).verify_slice(&sig).is_ok() && crate::now() < expires)
    }

    /// The link `link` as its holder may use it: not revoked, not expired, its
    /// owner enabled and what it shares still live; with a password, only with
    /// a valid `access` token; a link with nothing left to send is
    /// [`Error::ShareGone`] `SHARE_EXHAUSTED`. Each transfer then reserves its
    /// bytes ([`Shares::reserve_download`], [`Shares::reserve_zip`]).
    pub async fn open(&self, link: &str, access: Option<&str>) -> Result<Opened> {
        let share = self.repo.share(parse_link(link)?).await?.ok_or(Error::ShareNotFound)?;
        if share.expires_at.is_some_and(|t| crate::now() >= t) {
            return Err(Error::ShareGone { code: ErrorCode::ShareExpired, message: "this link has expired".into() });
        }
        if share.password_hash.is_some() && !self.access_ok(&share, access).await? {
            return Err(Error::SharePasswordRequired);
        }
        let share = self.sized(share).await?;
        if share.used_up() {
            return Err(exhausted());
        }
        self.opened(share).await
    }

    /// The link as [`open`] checks it, before any password: for `unlock`.
    pub async fn find(&self, link: &str) -> Result<Share> {
        let share = self.repo.share(parse_link(link)?).await?.ok_or(Error::ShareNotFound)?;
        if share.expires_at.is_some_and(|t| crate::now() >= t) {
            return Err(Error::ShareGone { code: ErrorCode::ShareExpired, message: "this link has expired".into() });
        }
        Ok(share)
    }

    async fn opened(&self, share: Share) -> Result<Opened> {
        let owner = self.repo.user_by_id(share.owner).await?.ok_or(Error::ShareNotFound)?;
        let root = match &share.target {
            ShareTarget::Folder(id) => {
                TreeItem::Folder(self.repo.folder(owner.id, id).await?.ok_or(Error::ShareNotFound)?)
            }
            ShareTarget::File(id) => {
                TreeItem::File(self.repo.user_file(owner.id, id).await?.ok_or(Error::ShareNotFound)?.0)
            }
        };
        Ok(Opened { share, owner, root })
    }

    /// Reserves `bytes` of the link's budget before they are sent (at least
    /// one byte, so that empty files count too): atomically, across every
    /// api process; [`Error::ShareGone`] `SHARE_EXHAUSTED` when the rest of
    /// the budget cannot cover them (nothing is reserved then).
    pub async fn reserve(&self, share: &Share, bytes: u64) -> Result<()> {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX).max(1);
        if self.repo.reserve_share_bytes(&share.link, bytes, share.budget()).await? { Ok(()) } else { Err(exhausted()) }
    }

    /// Reserves what a GET of `stored` with this `Range` header sends: a
    /// single satisfiable range its length; no range, one that is not
    /// understood, or several ranges (answered with the whole file) the whole
    /// size; an unsatisfiable one (answered 416) nothing. HEAD and 304 send
    /// no content: their callers reserve nothing.
    pub async fn reserve_download(&self, share: &Share, stored: &StoredFile, range: Option<&str>) -> Result<()> {
        let size = stored.filesize.max(0) as u64;
        let bytes = match crate::files::parse_range(range, size) {
            Ok(Some(r)) => r.end - r.start + 1,
            Ok(None) => size,
            Err(_) => return Ok(()),
        };
        self.reserve(share, bytes).await
    }

    /// Reserves what a zip of `members` sends: the sum of their sizes (the
    /// archive's own headers are not counted).
    pub async fn reserve_zip(&self, share: &Share, members: &[ZipMember]) -> Result<()> {
        let bytes = members.iter().filter_map(|m| m.content.as_ref()).map(|c| c.filesize.max(0) as u64).sum();
        self.reserve(share, bytes).await
    }

    /// What `path` (relative to the shared folder, `/` or empty for the shared
    /// item itself) names inside an open link.
    pub async fn resolve(&self, o: &Opened, path: &str) -> Result<TreeItem> {
        let path = if path.is_empty() { "/" } else { path };
        let names = split_path(path)?;
        let mut current = o.root.clone();
        for name in names {
            let TreeItem::Folder(folder) = &current else { return Err(Error::FileNotFound) };
            let mut found = self.repo.children_named(o.owner.id, &folder.id, name.as_str()).await?;
            current = match found.len() {
                1 => found.remove(0),
                0 => return Err(Error::FileNotFound),
                _ => return Err(Error::AmbiguousPath { path: path.to_owned(), ids: Vec::new() }),
            };
        }
        Ok(current)
    }

    /// Everything live below `folder_id` of `owner`, folders included, at most
    /// `cap` members ([`Error::TooLarge`] `ZIP_TOO_MANY_ENTRIES` beyond).
    pub async fn zip_members(&self, owner: &User, folder_id: &str) -> Result<Vec<ZipMember>> {
        let cap = self.zip_max_entries;
        let mut members = Vec::new();
        // Every member's full path is held (here and in the zip's central
        // directory): bounded in total, whatever the tree's shape.
        let mut path_bytes = 0usize;
        let mut queue = vec![(folder_id.to_owned(), String::new())];
        while let Some((folder, prefix)) = queue.pop() {
            let mut after = None;
            loop {
                let page = PageRequest { sort: crate::domain::SortKey::Name, desc: false, limit: 500, after };
                let (items, next) = self.repo.list_children(owner.id, &folder, &page).await?;
                // The page's contents in a few queries, not one per file.
                let ids: Vec<String> = items
                    .iter()
                    .filter_map(|i| match i {
                        TreeItem::File(f) => Some(f.id.clone()),
                        TreeItem::Folder(_) => None,
                    })
                    .collect();
                let mut contents: std::collections::HashMap<String, StoredFile> =
                    self.repo.contents_of(owner.id, &ids).await?.into_iter().collect();
                for item in items {
                    if members.len() >= cap {
                        return Err(Error::TooLarge {
                            code: ErrorCode::ZipTooManyEntries,
                            message: format!("a zip holds at most {cap} files and folders; download smaller folders"),
                        });
                    }
                    path_bytes += prefix.len() + item.name().len() + 1;
                    if path_bytes > ZIP_MAX_PATH_BYTES {
                        return Err(Error::TooLarge {
                            code: ErrorCode::ZipTooManyEntries,
                            message: format!(
                                "a zip's paths total at most {} MiB; download smaller folders",
                                ZIP_MAX_PATH_BYTES >> 20
                            ),
                        });
                    }
                    match item {
                        TreeItem::Folder(d) => {
                            let path = format!("{prefix}{}/", d.name);
                            members.push(ZipMember { path: path.clone(), content: None, modified: d.updated_at });
                            queue.push((d.id, path));
                        }
                        TreeItem::File(f) => {
                            let stored = contents.remove(&f.id).ok_or(Error::FileNotFound)?;
                            members.push(ZipMember {
                                path: format!("{prefix}{}", f.filename),
                                content: Some(stored),
                                modified: f.mtime,
                            });
                        }
                    }
                }
                match next {
                    Some(c) => after = Some(c),
                    None => break,
                }
            }
        }
        Ok(members)
    }

    /// The members as one zip archive, streamed as it is made: stored (not
    /// compressed: most big files are compressed already), zip64 where sizes or
    /// offsets need it, nothing held but a small pipe buffer. An error part-way
    /// ends the stream with an error (the client sees a cut-off download).
    pub fn zip_stream(&self, members: Vec<ZipMember>) -> impl Stream<Item = std::io::Result<Bytes>> + Send + use<> {
        use async_zip::base::write::ZipFileWriter;
        use async_zip::{Compression, ZipEntryBuilder};
        use futures::AsyncWriteExt;
        let (reader, writer) = tokio::io::duplex(256 << 10);
        let files = self.files.clone();
        self.files.background.spawn(async move {
            let write = async {
                let mut zip = ZipFileWriter::with_tokio(writer);
                for m in members {
                    let date = chrono::DateTime::from_timestamp(m.modified, 0).unwrap_or_default();
                    let entry = ZipEntryBuilder::new(m.path.clone().into(), Compression::Stored)
                        .last_modification_date(async_zip::ZipDateTime::from_chrono(&date))
                        .unix_permissions(if m.content.is_some() { 0o644 } else { 0o755 });
                    let mut w = zip.write_entry_stream(entry).await.map_err(std::io::Error::other)?;
                    if let Some(stored) = &m.content {
                        let mut bytes = files.read(stored, None).await.map_err(std::io::Error::other)?;
                        while let Some(piece) = bytes.next().await {
                            w.write_all(&piece?).await?;
                        }
                    }
                    w.close().await.map_err(std::io::Error::other)?;
                }
                zip.close().await.map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(())
            };
            if let Err(e) = write.await {
                // Dropping the writer ends the body early; the client sees a broken download.
                tracing::warn!(error = %e, "a zip download failed part-way");
            }
        });
        tokio_util::io::ReaderStream::with_capacity(reader, 64 << 10)
    }

    /// The caller's links, newest first.
    pub async fn list(&self, user: &User) -> Result<Vec<Share>> {
        let mut shares = Vec::new();
        for share in self.repo.shares_of(user.id).await? {
            shares.push(self.sized(share).await?);
        }
        Ok(shares)
    }

    /// Revokes one of the caller's links.
    pub async fn revoke(&self, user: &User, link: &str) -> Result<()> {
        self.repo.revoke_share(user.id, parse_link(link)?, crate::now()).await
    }

    /// The path of what the caller's link shares, while it is live.
    pub async fn target_path(&self, user: &User, share: &Share, paths: &mut PathCache) -> Result<Option<String>> {
        Ok(match &share.target {
            ShareTarget::Folder(id) => match self.repo.folder(user.id, id).await? {
                Some(_) => Some(paths.folder_path(&self.tree, user, id).await?),
                None => None,
            },
            ShareTarget::File(id) => match self.repo.user_file(user.id, id).await? {
                Some((f, _)) => Some(paths.file_path(&self.tree, user, &f).await?),
                None => None,
            },
        })
    }

    /// Makes an upload link (a file drop) into the caller's live folder.
    pub async fn create_upload_link(&self, user: &User, n: NewUploadLink) -> Result<UploadLink> {
        let folder = n.folder.unwrap_or_default();
        if !folder.is_empty() && self.repo.folder(user.id, &folder).await?.is_none() {
            return Err(Error::FolderNotFound);
        }
        let (password_hash, now, expires_at) = self.link_terms(n.password, n.expires_in).await?;
        let link = UploadLink {
            link: new_link(),
            owner: user.id,
            folder,
            password_hash,
            expires_at,
            max_bytes: n.max_bytes,
            bytes_used: 0,
            created_at: now,
        };
        self.repo.create_upload_link(&link).await?;
        Ok(link)
    }

    /// The caller's upload links, newest first.
    pub async fn upload_links(&self, user: &User) -> Result<Vec<UploadLink>> {
        self.repo.upload_links_of(user.id).await
    }

    /// Revokes one of the caller's upload links.
    pub async fn revoke_upload_link(&self, user: &User, link: &str) -> Result<()> {
        self.repo.revoke_upload_link(user.id, parse_link(link)?, crate::now()).await
    }

    /// The upload link `link` as a stranger may use it, with its owner: not
    /// revoked ([`Error::ShareNotFound`]), not expired (`SHARE_EXPIRED`),
    /// its password given when it has one (`SHARE_PASSWORD_REQUIRED`,
    /// `SHARE_PASSWORD_WRONG`; a right one is hashed once per process and
    /// ten minutes, see [`VerifiedPasswords`]).
    pub async fn open_upload_link(&self, link: &str, password: Option<String>) -> Result<(User, UploadLink)> {
        let found = self.repo.upload_link(parse_link(link)?).await?.ok_or(Error::ShareNotFound)?;
        if found.expires_at.is_some_and(|t| crate::now() >= t) {
            return Err(Error::ShareGone { code: ErrorCode::ShareExpired, message: "this link has expired".into() });
        }
        if let Some(hash) = &found.password_hash {
            let Some(password) = password else { return Err(Error::SharePasswordRequired) };
            let (key, now) = (VerifiedPasswords::key(link, hash, &password), crate::now());
            if !self.verified.holds(&key, now) {
                if !self.hashing.verify(password, hash.clone()).await? {
                    return Err(Error::SharePasswordWrong);
                }
                self.verified.remember(key, now);
            }
        }
        let owner = self.repo.user_by_id(found.owner).await?.ok_or(Error::ShareNotFound)?;
        Ok((owner, found))
    }

    /// Counts an upload of `bytes` against the link's byte limit before it
    /// begins; `SHARE_EXHAUSTED` when the rest cannot take it.
    pub async fn reserve_upload_link(&self, link: &UploadLink, bytes: u64) -> Result<()> {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        if self.repo.reserve_upload_link_bytes(&link.link, bytes).await? {
            Ok(())
        } else {
            Err(Error::ShareGone {
                code: ErrorCode::ShareExhausted,
                message: "this upload link cannot take that many more bytes".into(),
            })
        }
    }

    /// Gives an upload's `bytes` back to the link's byte limit: the upload
    /// was refused after [`Shares::reserve_upload_link`], or aborted
    /// unfinished. (One left to expire keeps them.)
    pub async fn release_upload_link(&self, link: &UploadLink, bytes: u64) -> Result<()> {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.repo.release_upload_link_bytes(&link.link, bytes).await
    }

    /// An access token for the link: at once for a link without a password;
    /// for one with, only for its password ([`Error::SharePasswordWrong`]).
    pub async fn unlock(&self, share: &Share, password: String) -> Result<(String, i64)> {
        if let Some(hash) = &share.password_hash
            && !self.hashing.verify(password, hash.clone()).await?
        {
            return Err(Error::SharePasswordWrong);
        }
        self.access_token(share).await
    }

    /// The open link and how many whole downloads it has left (`None`: no
    /// limit; 0 while less than one size is left but not nothing); a used-up
    /// link is [`Error::ShareGone`] `SHARE_EXHAUSTED`.
    pub async fn open_with_downloads(&self, link: &str, access: Option<&str>) -> Result<(Opened, Option<i64>)> {
        let o = self.open(link, access).await?;
        let downloads_left = o.share.max_downloads.map(|m| (m - o.share.downloads()).max(0));
        Ok((o, downloads_left))
    }

    /// One page of a folder inside an open link.
    pub async fn list_folder(
        &self,
        o: &Opened,
        folder_id: &str,
        page: &PageRequest,
    ) -> Result<(Vec<TreeItem>, Option<ListCursor>)> {
        self.repo.list_children(o.owner.id, folder_id, page).await
    }

    /// The file at `path` inside an open link, with its content.
    pub async fn file(&self, o: &Opened, path: &str) -> Result<(UserFile, StoredFile)> {
        let TreeItem::File(entry) = self.resolve(o, path).await? else {
            return Err(Error::FileNotFound);
        };
        self.repo.user_file(o.owner.id, &entry.id).await?.ok_or(Error::FileNotFound)
    }
}

/// What a link with nothing left to send answers.
fn exhausted() -> Error {
    Error::ShareGone { code: ErrorCode::ShareExhausted, message: "this link has no downloads left".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_22_url_safe_characters_and_others_are_unknown() {
        let l = new_link();
        assert_eq!(l.len(), LINK_LEN);
        assert_eq!(parse_link(&l).unwrap(), l);
        assert_ne!(new_link(), l);
        for bad in ["", "short", "../../etc/passwd/aaaaaa", &"a".repeat(23), "aaaaaaaaaaaaaaaaaaaaa="] {
            assert!(matches!(parse_link(bad), Err(Error::ShareNotFound)), "{bad:?}");
        }
    }

    #[test]
    fn a_right_upload_link_password_is_trusted_for_ten_minutes_and_only_itself() {
        let v = VerifiedPasswords::default();
        let key = VerifiedPasswords::key("link", "$argon2id$stored", "right");
        assert!(!v.holds(&key, 1000));
        v.remember(key, 1000);
        assert!(v.holds(&key, 1000 + UPLOAD_PASSWORD_TTL - 1));
        assert!(!v.holds(&key, 1000 + UPLOAD_PASSWORD_TTL), "no longer than the TTL");
        for other in [
            VerifiedPasswords::key("link", "$argon2id$stored", "wrong"),
            VerifiedPasswords::key("link", "$argon2id$other", "right"),
            VerifiedPasswords::key("linkx", "$argon2id$stored", "right"),
            VerifiedPasswords::key("lin", "k$argon2id$stored", "right"),
        ] {
            assert!(!v.holds(&other, 1000), "another link, hash or password is not trusted");
        }
        for i in 0..UPLOAD_PASSWORDS_KEPT as u32 + 5 {
            v.remember(VerifiedPasswords::key("l", "h", &i.to_string()), 2000);
        }
        assert!(v.until.lock().unwrap().len() <= UPLOAD_PASSWORDS_KEPT, "bounded");
    }
}
