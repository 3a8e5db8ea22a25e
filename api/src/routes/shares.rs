//! Share links: the owner's routes (make, list, revoke) and the public ones
//! anyone with a link uses, without an account (look, unlock, list, download,
//! zip).

use poem::Body;
use poem::web::Data;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use shared::domain::{Share, ShareTarget, TreeItem, User};
use shared::shares::{NewShare, Opened};
use shared::tree::PathCache;

use super::Tag;
use super::files::{DownloadResponse, etag_of, not_modified, serve};
use super::folders::{EntryKind, SortBy, SortOrder};
use crate::auth::BearerAuth;
use crate::limits::json_body_limit;
use crate::state::AppState;
use crate::text::Text;

/// A new share link. Its password (8-1024 characters) is kept hashed;
/// `expires_in` is in seconds (absent: the server's default lifetime;
/// 0: never); `max_downloads` limits the bytes the link sends to that many
/// times the size of what it shares (a folder: its files' total when the
/// link is made), however they are asked for (absent: no limit).
#[derive(Debug, Object)]
pub struct CreateShareRequest {
    /// The id of your file or folder.
    #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
    pub id: Text,
    /// A password the link's holders must give.
    #[oai(nullable, validator(min_length = 8, max_length = 1024, pattern = r"^[^\x00]*$"))]
    pub password: Option<Text>,
    /// Seconds until the link stops working (0: never).
    #[oai(nullable, validator(minimum(value = "0"), maximum(value = "3153600000")))]
    pub expires_in: Option<i64>,
    /// How many downloads it allows.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "1000000000")))]
    pub max_downloads: Option<i64>,
}

/// One of your share links. `kind` says whether it shares a file or a folder.
#[derive(Debug, Object)]
pub struct ShareInfo {
    /// The link's id.
    pub link: String,
    /// The public page that opens it.
    pub url: String,
    // No doc comment: an enum-typed field (see the struct's doc).
    pub kind: EntryKind,
    /// The id of the shared file or folder.
    pub target: String,
    /// Its path, while it is live; absent when it is in the trash or gone
    /// (the link then answers 404 until it is restored).
    #[oai(skip_serializing_if_is_none)]
    pub path: Option<String>,
    /// Whether holders must give a password.
    pub has_password: bool,
    /// When it stops working (Unix seconds); absent: never.
    #[oai(skip_serializing_if_is_none)]
    pub expires_at: Option<i64>,
    /// How many downloads it allows; absent: no limit.
    #[oai(skip_serializing_if_is_none)]
    pub max_downloads: Option<i64>,
    /// Downloads so far: the bytes sent over `size`, rounded up.
    pub downloads: i64,
    /// Bytes of content sent so far (ranges, files of a folder and zips all count).
    pub bytes_sent: i64,
    /// What one download is, in bytes: the size of what it shares when the
    /// link was made (a folder: the total of the files below it). Absent
    /// for an older link whose target is not live.
    #[oai(skip_serializing_if_is_none)]
    pub size: Option<i64>,
    /// When it was made (Unix seconds).
    pub created_at: i64,
}

/// Your share links.
#[derive(Debug, Object)]
pub struct ShareList {
    /// Newest first; revoked links are not listed.
    pub shares: Vec<ShareInfo>,
}

/// Create answers.
#[derive(ApiResponse)]
pub enum CreatedShare {
    /// The link works now.
    #[oai(status = 201)]
    Created(Json<ShareInfo>),
}

/// Revoke answers.
#[derive(ApiResponse)]
pub enum RevokedShare {
    /// The link no longer works.
    #[oai(status = 204)]
    Revoked,
}

async fn share_info(state: &AppState, user: &User, s: Share, paths: &mut PathCache) -> shared::Result<ShareInfo> {
    let path = state.services.shares.target_path(user, &s, paths).await?;
    let (kind, target) = match &s.target {
        ShareTarget::Folder(id) => (EntryKind::Folder, id.clone()),
        ShareTarget::File(id) => (EntryKind::File, id.clone()),
    };
    let downloads = s.downloads();
    Ok(ShareInfo {
        url: format!("{}/s/{}", state.public_base, s.link),
        link: s.link,
        kind,
        target,
        path,
        has_password: s.password_hash.is_some(),
        expires_at: s.expires_at,
        max_downloads: s.max_downloads,
        downloads,
        bytes_sent: s.bytes_sent,
        size: s.size,
        created_at: s.created_at,
    })
}

crate::operation_errors!(
    /// Errors of making a link.
    CreateShareErrors {
        BadRequest = 400,
        Unauthorized = 401,
        NotFound = 404,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
    }
);
crate::operation_errors!(
    /// Errors of the owner's link routes.
    ShareErrors { BadRequest = 400, Unauthorized = 401, NotFound = 404 }
);

/// Share links, as their owner manages them.
pub struct ShareApi;

#[OpenApi(prefix_path = "/share", tag = "Tag::Shares")]
impl ShareApi {
    /// Make a share link to one of your files or folders.
    ///
    /// Anyone with the link's URL can open it without an account: a file
    /// downloads (with `Range`), a folder can be browsed and downloaded as
    /// one zip. Optional password, expiry and download limit.
    #[oai(path = "/create", method = "post", operation_id = "share_create", transform = "json_body_limit")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<CreateShareRequest>,
    ) -> Result<CreatedShare, CreateShareErrors> {
        let body = body.0;
        let new = NewShare {
            target: body.id.as_str().to_owned(),
            password: body.password.map(|p| p.0),
            expires_in: body.expires_in,
            max_downloads: body.max_downloads,
        };
        let s = state.services.shares.create(&auth.0, new).await?;
        Ok(CreatedShare::Created(Json(share_info(&state, &auth.0, s, &mut PathCache::default()).await?)))
    }

    /// List your share links, with their download counts.
    #[oai(path = "/list", method = "get", operation_id = "share_list")]
    async fn list(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<Json<ShareList>, ShareErrors> {
        let mut paths = PathCache::default();
        let mut shares = Vec::new();
        for s in state.services.shares.list(&auth.0).await? {
            shares.push(share_info(&state, &auth.0, s, &mut paths).await?);
        }
        Ok(Json(ShareList { shares }))
    }

    /// Revoke one of your share links.
    #[oai(path = "/revoke", method = "delete", operation_id = "share_revoke")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The link's id.
        #[oai(validator(max_length = 64))]
        link: Query<String>,
    ) -> Result<RevokedShare, ShareErrors> {
        state.services.shares.revoke(&auth.0, &link.0).await?;
        Ok(RevokedShare::Revoked)
    }
}

/// What a link shares, as its holder sees it. `kind` says whether it is a
/// file or a folder.
#[derive(Debug, Object)]
pub struct PublicShare {
    // No doc comment: an enum-typed field (see the struct's doc).
    pub kind: EntryKind,
    /// The file's or folder's name.
    pub name: String,
    /// The file's size in bytes.
    #[oai(skip_serializing_if_is_none)]
    pub size: Option<i64>,
    /// The file's modification time (Unix seconds).
    #[oai(skip_serializing_if_is_none)]
    pub mtime: Option<i64>,
    /// When the link stops working (Unix seconds); absent: never.
    #[oai(skip_serializing_if_is_none)]
    pub expires_at: Option<i64>,
    /// Whole downloads it has left; absent: no limit. 0 while less than
    /// one size is left: a range, or a smaller file of a folder, may still fit.
    #[oai(skip_serializing_if_is_none)]
    pub downloads_left: Option<i64>,
}

/// A file or a folder inside a shared folder. `kind` says which.
#[derive(Debug, Object)]
pub struct PublicEntry {
    // No doc comment: an enum-typed field (see the struct's doc).
    pub kind: EntryKind,
    /// Its name.
    pub name: String,
    /// A file's size in bytes.
    #[oai(skip_serializing_if_is_none)]
    pub size: Option<i64>,
    /// Last change (Unix seconds).
    pub updated_at: i64,
    /// A file's modification time (Unix seconds): what `sort=time` orders files by.
    #[oai(skip_serializing_if_is_none)]
    pub mtime: Option<i64>,
}

/// A page of a shared folder.
#[derive(Debug, Object)]
pub struct PublicListing {
    /// The folder listed, relative to the shared folder (`/` is the shared folder).
    pub path: String,
    /// Folders first, then files.
    pub entries: Vec<PublicEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// A password for a link.
#[derive(Debug, Object)]
pub struct UnlockRequest {
    /// The link's password.
    #[oai(validator(max_length = 1024))]
    pub password: Text,
}

/// Access to a password-protected link: pass `access` to the other public routes.
#[derive(Debug, Object)]
pub struct ShareAccess {
    /// The access token (a query parameter, so media elements and links can carry it).
    pub access: String,
    /// When it stops working (Unix seconds); unlock again then.
    pub expires_at: i64,
}

/// A zip of a shared folder.
#[derive(ApiResponse)]
pub enum ZipResponse {
    /// The folder as one zip archive, streamed as it is made.
    #[oai(status = 200, content_type = "application/zip")]
    Zip(
        Binary<Body>,
        /// `attachment; filename="<folder>.zip"`.
        #[oai(header = "Content-Disposition")]
        String,
    ),
}

crate::operation_errors!(
    /// Errors of the public link routes.
    PublicErrors { BadRequest = 400, Unauthorized = 401, NotFound = 404, Conflict = 409, Gone = 410, UriTooLong = 414 }
);
crate::operation_errors!(
    /// Errors of unlocking a link.
    UnlockErrors {
        BadRequest = 400,
        Forbidden = 403,
        NotFound = 404,
        Gone = 410,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
        TooManyRequests = 429,
    }
);
crate::operation_errors!(
    /// Errors of downloads through a link.
    PublicDownloadErrors {
        BadRequest = 400,
        Unauthorized = 401,
        NotFound = 404,
        Conflict = 409,
        Gone = 410,
        PayloadTooLarge = 413,
        UriTooLong = 414,
    }
);

fn default_limit() -> i64 {
    100
}

/// Share links, as anyone holding one uses them (no account).
pub struct PublicShareApi;

#[OpenApi(prefix_path = "/public/share", tag = "Tag::Shares")]
impl PublicShareApi {
    /// What a link shares.
    ///
    /// 401 `SHARE_PASSWORD_REQUIRED` when it has a password and no valid
    /// `access` came: unlock it first; 410 when it has expired or has no
    /// downloads left.
    #[oai(path = "/info", method = "get", operation_id = "public_share_info")]
    async fn info(
        &self,
        state: Data<&AppState>,
        /// The link's id.
        #[oai(validator(max_length = 64))]
        link: Query<String>,
        /// From `/public/share/unlock`, for links with a password.
        #[oai(validator(max_length = 256))]
        access: Query<Option<String>>,
    ) -> Result<Json<PublicShare>, PublicErrors> {
        let (o, downloads_left) = state.services.shares.open_with_downloads(&link.0, access.0.as_deref()).await?;
        let (kind, name, size, mtime) = match &o.root {
            TreeItem::Folder(d) => (EntryKind::Folder, d.name.clone(), None, None),
            TreeItem::File(f) => (EntryKind::File, f.filename.clone(), Some(f.filesize), Some(f.mtime)),
        };
        Ok(Json(PublicShare { kind, name, size, mtime, expires_at: o.share.expires_at, downloads_left }))
    }

    /// Give a link's password.
    ///
    /// The answer's `access` opens the link for an hour. Wrong passwords are
    /// limited per link and client address (`PAN_SHARE_PASSWORD_RATE` a
    /// minute), and per link at ten times that: past either limit every
    /// attempt, even with the right password, gets 429 with `Retry-After`;
    /// holders who unlocked before keep their `access`.
    #[oai(path = "/unlock", method = "post", operation_id = "public_share_unlock", transform = "json_body_limit")]
    async fn unlock(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        /// The link's id.
        #[oai(validator(max_length = 64))]
        link: Query<String>,
        body: Json<UnlockRequest>,
    ) -> Result<Json<ShareAccess>, UnlockErrors> {
        let s = state.services.shares.find(&link.0).await?;
        let attempt = match s.password_hash {
            Some(_) => Some(state.rate_limits.share_password(req, &s.link).await?),
            None => None,
        };
        let (access, expires_at) = state.services.shares.unlock(&s, body.0.password.0).await?;
        // The right password: this attempt is not held against anyone.
        if let Some(attempt) = attempt
            && let Err(e) = attempt.forgive().await
        {
            // The password was right and access is granted: a backend that
            // fails to forget the attempt only costs the client one cell.
            tracing::warn!(error = %e, "forgiving a right share password failed");
        }
        Ok(Json(ShareAccess { access, expires_at }))
    }

    /// List a folder of a shared folder.
    #[oai(path = "/list", method = "get", operation_id = "public_share_list")]
    #[allow(clippy::too_many_arguments, reason = "each argument is one extractor of the request")]
    async fn list(
        &self,
        state: Data<&AppState>,
        /// The link's id.
        #[oai(validator(max_length = 64))]
        link: Query<String>,
        /// From `/public/share/unlock`, for links with a password.
        #[oai(validator(max_length = 256))]
        access: Query<Option<String>>,
        /// A folder inside the shared folder, e.g. `/photos` (default `/`: the shared folder).
        #[oai(validator(
            max_length = 16384,
            pattern = r"^/+((\.?\.?[^./\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff][^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*|\.\.\.[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*)/+)*(\.?\.?[^./\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff][^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*|\.\.\.[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*)?$"
        ))]
        path: Query<Option<String>>,
        /// Sort by `name` (default), `size` or `time`.
        sort: Query<Option<SortBy>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<SortOrder>>,
        /// Page size, 1-1000 (default 100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<i64>,
        /// `next_cursor` of the previous page: the next page of that
        /// listing, in its sort and order (`sort` and `order` shape a first page).
        #[oai(validator(
            max_length = 2048,
            pattern = r"^((name\.[ad]\.[df]|size\.[ad]\.d)\.[0-9]{1,18}\.([0-9a-f]{2})*|(size\.[ad]\.f|time\.[ad]\.[df])\.[0-9]{1,18}\.-?[0-9]{1,18})$"
        ))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<PublicListing>, PublicErrors> {
        let o = state.services.shares.open(&link.0, access.0.as_deref()).await?;
        let path = path.0.unwrap_or_else(|| "/".into());
        let TreeItem::Folder(folder) = state.services.shares.resolve(&o, &path).await? else {
            return Err(shared::Error::FolderNotFound.into());
        };
        let (sort, order) = (sort.0.unwrap_or(SortBy::Name), order.0.unwrap_or(SortOrder::Asc));
        let page = super::folders::page_request(sort, order, limit.0, cursor.0.as_deref())?;
        let (items, next) = state.services.shares.list_folder(&o, &folder.id, &page).await?;
        let entries = items
            .into_iter()
            .map(|i| match i {
                TreeItem::Folder(d) => PublicEntry {
                    kind: EntryKind::Folder,
                    name: d.name,
                    size: None,
                    updated_at: d.updated_at,
                    mtime: None,
                },
                TreeItem::File(f) => PublicEntry {
                    kind: EntryKind::File,
                    name: f.filename,
                    size: Some(f.filesize),
                    updated_at: f.updated_at,
                    mtime: Some(f.mtime),
                },
            })
            .collect();
        Ok(Json(PublicListing { path, entries, next_cursor: next.map(|c| super::folders::encode_cursor(&page, &c)) }))
    }

    /// Download the shared file, or a file in the shared folder.
    ///
    /// Honours `Range` (206; several ranges get the whole file) and
    /// `If-None-Match` (304). On a link with a download limit each GET
    /// reserves the bytes it sends before the first one goes (a range its
    /// length, the whole file its size): 410 `SHARE_EXHAUSTED` when the
    /// rest of the budget cannot cover them. HEAD and 304 reserve nothing.
    #[oai(path = "/download", method = "get", operation_id = "public_share_download")]
    #[allow(clippy::too_many_arguments, reason = "each argument is one extractor of the request")]
    async fn download(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        /// The link's id.
        #[oai(validator(max_length = 64))]
        link: Query<String>,
        /// From `/public/share/unlock`, for links with a password.
        #[oai(validator(max_length = 256))]
        access: Query<Option<String>>,
        /// For a shared folder: the file inside it, e.g. `/photos/a.jpg`.
        #[oai(validator(
            max_length = 16384,
            pattern = r"^/+((\.?\.?[^./\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff][^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*|\.\.\.[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*)/+)*(\.?\.?[^./\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff][^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*|\.\.\.[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*)?$"
        ))]
        path: Query<Option<String>>,
        /// `bytes=first-last`, `bytes=first-` or `bytes=-suffix_length`.
        #[oai(name = "Range")]
        range: Header<Option<String>>,
        /// The `ETag` (or `Last-Modified`) of the client's partial copy: a
        /// `Range` counts only while it still matches.
        #[oai(name = "If-Range")]
        if_range: Header<Option<String>>,
        /// An ETag from an earlier download.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
        /// Show it in place (a preview) when a browser can: images, audio,
        /// video, PDF, plain text; anything else downloads.
        inline: Query<Option<bool>>,
    ) -> Result<DownloadResponse, PublicDownloadErrors> {
        let o = state.services.shares.open(&link.0, access.0.as_deref()).await?;
        let (entry, stored) = state.services.shares.file(&o, path.0.as_deref().unwrap_or("/")).await?;
        // HEAD and 304 send no content.
        if !super::is_head(req) && !not_modified(if_none_match.0.as_deref(), &etag_of(&stored)) {
            state.services.shares.reserve_download(&o.share, &stored, range.0.as_deref()).await?;
        }
        let inline = inline.0.unwrap_or(false);
        let conditions = super::files::Conditions {
            range: range.0.as_deref(),
            if_range: if_range.0.as_deref(),
            if_none_match: if_none_match.0.as_deref(),
        };
        Ok(serve(&state, &entry, &stored, conditions, inline).await?)
    }

    /// Download a shared folder (or a folder in it) as one zip.
    ///
    /// Streamed as it is made (stored, not compressed; zip64 for large
    /// ones). Reserves the sum of its files' sizes from the link's budget
    /// before the first byte (410 `SHARE_EXHAUSTED` when the rest cannot
    /// cover it; HEAD reserves nothing). At most `PAN_ZIP_MAX_ENTRIES` files and
    /// folders (413 `ZIP_TOO_MANY_ENTRIES`).
    #[oai(path = "/zip", method = "get", operation_id = "public_share_zip")]
    async fn zip(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        /// The link's id.
        #[oai(validator(max_length = 64))]
        link: Query<String>,
        /// From `/public/share/unlock`, for links with a password.
        #[oai(validator(max_length = 256))]
        access: Query<Option<String>>,
        /// A folder inside the shared folder (default `/`: all of it).
        #[oai(validator(
            max_length = 16384,
            pattern = r"^/+((\.?\.?[^./\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff][^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*|\.\.\.[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*)/+)*(\.?\.?[^./\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff][^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*|\.\.\.[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]*)?$"
        ))]
        path: Query<Option<String>>,
    ) -> Result<ZipResponse, PublicDownloadErrors> {
        let o: Opened = state.services.shares.open(&link.0, access.0.as_deref()).await?;
        let TreeItem::Folder(folder) = state.services.shares.resolve(&o, path.0.as_deref().unwrap_or("/")).await?
        else {
            return Err(shared::Error::FolderNotFound.into());
        };
        let members = state.services.shares.zip_members(&o.owner, &folder.id).await?;
        let disposition = super::files::content_disposition(&format!("{}.zip", folder.name));
        if super::is_head(req) {
            return Ok(ZipResponse::Zip(Binary(Body::empty()), disposition));
        }
        state.services.shares.reserve_zip(&o.share, &members).await?;
        let body = Body::from_bytes_stream(state.services.shares.zip_stream(members));
        Ok(ZipResponse::Zip(Binary(body), disposition))
    }
}
