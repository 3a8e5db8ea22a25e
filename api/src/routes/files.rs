//! The caller's files: list, download, rename, delete, single-request upload.

use poem::Body;
use poem::web::Data;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::types::MaybeUndefined;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Multipart, Object, OpenApi};
use shared::ErrorCode;
use shared::domain::{EntryId, FileName, FolderId, Mtime, NameRule, Placement, Sha1Hex, Sha256Hex, User, UserFile};
use shared::files::{self, ByteRange, DownloadLink, FileRef};
use shared::tree::PathCache;

use super::Tag;
use super::folders::{self, OnConflict};
use crate::auth::BearerAuth;
use crate::error::ApiResult;
use crate::limits::{json_body_limit, single_upload_limit};
use crate::state::AppState;
use crate::text::Text;

/// One of the caller's files.
#[derive(Debug, Clone, Object)]
pub struct FileInfo {
    /// The entry's id: names this file in every file route (`id`).
    pub id: String,
    /// SHA-1 of the content. File routes also accept it (`filehash`) while it
    /// names exactly one of your files.
    pub filehash: String,
    /// SHA-256 of the content: with the size, its identity (absent for
    /// files stored before pan recorded it).
    #[oai(skip_serializing_if_is_none)]
    pub sha256: Option<String>,
    /// The caller's name for the file.
    pub filename: String,
    /// Size in bytes.
    pub filesize: i64,
    /// When the caller got the file (Unix seconds).
    pub uploaded_at: i64,
    /// Last rename or move (Unix seconds).
    pub updated_at: i64,
    /// The file's own modification time (Unix seconds): the `mtime` its
    /// upload declared, else when it was uploaded. Moves and renames keep it.
    pub mtime: i64,
    /// The folder it is in; absent: the root.
    #[oai(skip_serializing_if_is_none)]
    pub folder: Option<String>,
    /// Its full path, e.g. `/photos/2026/a.jpg`.
    #[oai(skip_serializing_if_is_none)]
    pub path: Option<String>,
}

impl From<UserFile> for FileInfo {
    fn from(f: UserFile) -> Self {
        FileInfo {
            id: f.id,
            filehash: f.filehash,
            sha256: f.sha256,
            filename: f.filename,
            filesize: f.filesize,
            uploaded_at: f.uploaded_at,
            updated_at: f.updated_at,
            mtime: f.mtime,
            folder: (!f.folder.is_empty()).then_some(f.folder),
            path: None,
        }
    }
}

/// A file's answer with its path.
pub async fn file_with_path(state: &AppState, user: &User, f: UserFile) -> shared::Result<FileInfo> {
    let path = PathCache::default().file_path(&state.services.tree, user, &f).await?;
    Ok(FileInfo { path: Some(path), ..FileInfo::from(f) })
}

/// A page of files.
#[derive(Debug, Object)]
pub struct FileList {
    /// The files on this page, newest first, each with its path.
    pub files: Vec<FileInfo>,
    /// How many files the caller has in all.
    pub total: i64,
    /// The `limit` used.
    pub limit: i64,
    /// The `offset` used.
    pub offset: i64,
}

/// A new name for a file, named by `id` or by `filehash` (both: the file
/// `id` when it has that SHA-1; neither or a mismatch: 404 `FILE_NOT_FOUND`).
/// `on_conflict`, when another entry in its folder has that name: `refuse`
/// (the default) or `rename` (to the first free `name (n).ext`).
#[derive(Debug, Object)]
pub struct RenameRequest {
    /// The file's id.
    #[oai(nullable, validator(pattern = r"^[0-9a-f]{32}$"))]
    pub id: Option<Text>,
    /// SHA-1 of the file (while it names exactly one of your files; with
    /// `id`, the file must have it).
    #[oai(nullable, validator(pattern = r"^[0-9A-Fa-f]{40}$"))]
    pub filehash: Option<Text>,
    /// The new name: 1-255 bytes of UTF-8, no `/`, no control characters,
    /// not `.` or `..`.
    #[oai(validator(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]+$"
    ))]
    pub filename: Text,
    // When another entry in the folder has that name: `refuse` (the
    // default), `rename` (to the first free `name (n).ext`) or `replace`.
    pub on_conflict: MaybeUndefined<OnConflict>,
    /// With `replace`: the SHA-256 the replaced file must have (412
    /// `CONTENT_CHANGED` otherwise).
    #[oai(nullable, validator(pattern = r"^[0-9A-Fa-f]{64}$"))]
    pub if_match: Option<Text>,
}

/// Delete answers.
#[derive(ApiResponse)]
pub enum DeleteResponse {
    /// The entry is in the trash (or, with `permanent`, gone: the bytes too
    /// once nobody else has the file).
    #[oai(status = 204)]
    Deleted,
}

/// A single-request upload. `on_conflict`, when the name is taken in the
/// folder: `rename` (the default) or `refuse`.
#[derive(Debug, Multipart)]
pub struct SingleUpload {
    /// The file's bytes.
    pub file: Upload,
    /// The name to list it under; defaults to the part's file name.
    pub filename: Option<String>,
    /// The folder to put it in (its id); absent: the root.
    pub folder: Option<String>,
    // When the name is taken there: `rename` (the default), `refuse`, or
    // `replace` (the file of that name gets this content; its own is kept
    // as a version).
    pub on_conflict: Option<OnConflict>,
    /// With `replace`: the SHA-256 the replaced file must have (412
    /// `CONTENT_CHANGED` otherwise).
    pub if_match: Option<String>,
    /// The file's modification time, Unix seconds from 0 to 253402300799
    /// (the end of year 9999; else 400 `INVALID_MTIME`); absent: the upload
    /// time.
    pub mtime: Option<i64>,
}

/// Single-request upload answers.
#[derive(ApiResponse)]
pub enum UploadResponse {
    /// The file is stored (or was already: identical content is kept once).
    #[oai(status = 201)]
    Created(Json<FileInfo>),
}

/// Download answers.
#[derive(ApiResponse)]
pub enum DownloadResponse {
    /// The whole file.
    #[oai(status = 200)]
    Full(
        Binary<Body>,
        /// Size in bytes.
        #[oai(header = "Content-Length")]
        u64,
        /// `attachment` with the caller's name for the file (RFC 6266).
        #[oai(header = "Content-Disposition")]
        String,
        /// The content's SHA-256, quoted.
        #[oai(header = "ETag")]
        String,
        /// `bytes`: Range requests are welcome.
        #[oai(header = "Accept-Ranges")]
        String,
        /// `application/octet-stream`, or the file's media type in a preview.
        #[oai(header = "Content-Type")]
        String,
        /// `nosniff`: the browser never guesses another type.
        #[oai(header = "X-Content-Type-Options")]
        String,
        /// No scripts, whatever the file holds.
        #[oai(header = "Content-Security-Policy")]
        String,
        /// The file's modification time (its `mtime`), as an HTTP date.
        #[oai(header = "Last-Modified")]
        String,
    ),
    /// The requested byte range.
    #[oai(status = 206)]
    Partial(
        Binary<Body>,
        /// Length of the range.
        #[oai(header = "Content-Length")]
        u64,
        /// `bytes first-last/size`.
        #[oai(header = "Content-Range")]
        String,
        /// `attachment` with the caller's name for the file (RFC 6266).
        #[oai(header = "Content-Disposition")]
        String,
        /// The content's SHA-256, quoted.
        #[oai(header = "ETag")]
        String,
        /// `application/octet-stream`, or the file's media type in a preview.
        #[oai(header = "Content-Type")]
        String,
        /// `nosniff`: the browser never guesses another type.
        #[oai(header = "X-Content-Type-Options")]
        String,
        /// No scripts, whatever the file holds.
        #[oai(header = "Content-Security-Policy")]
        String,
        /// The file's modification time (its `mtime`), as an HTTP date.
        #[oai(header = "Last-Modified")]
        String,
    ),
    /// The requested byte range lies outside the file (`code`
    /// `RANGE_NOT_SATISFIABLE`).
    #[oai(status = 416)]
    RangeNotSatisfiable(
        Json<crate::error::ErrorBody>,
        /// `bytes */size` (RFC 9110): the file's size.
        #[oai(header = "Content-Range")]
        String,
    ),
    /// `If-None-Match` matched: the client's copy is current.
    #[oai(status = 304)]
    NotModified(
        /// The content's SHA-256, quoted.
        #[oai(header = "ETag")]
        String,
    ),
}

/// The policy of every download: nothing in a file may run script or load
/// anything but itself, also when a browser shows it in place.
pub const DOWNLOAD_CSP: &str =
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; object-src 'self'";

/// The media type a browser may show in place (a preview) for a file of
/// this name: images, audio, video, PDF and plain text. Never HTML, SVG or
/// anything else that can carry script; those always download.
pub fn preview_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "bmp" => "image/bmp",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "ogv" => "video/ogg",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "m4a" | "aac" => "audio/mp4",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "pdf" => "application/pdf",
        "txt" | "md" | "log" | "csv" | "tsv" | "json" | "yaml" | "yml" | "toml" | "ini" | "conf" | "rs" | "py"
        | "go" | "c" | "h" | "cpp" | "java" | "sh" | "sql" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266,
/// RFC 5987): old clients get a safe ASCII name, new ones the real one.
pub fn content_disposition(name: &str) -> String {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The same with `inline`: shown in place, saved under the name.
fn inline_disposition(name: &str) -> String {
    content_disposition(name).replacen("attachment", "inline", 1)
}

/// A time-limited download URL.
#[derive(Debug, Object)]
pub struct DownloadUrl {
    /// GET it with any HTTP client, no token needed; `Range` works.
    pub url: String,
    /// When it stops working (Unix seconds).
    pub expires_at: i64,
}

crate::operation_errors!(
    /// Errors of listing.
    QueryErrors { BadRequest = 400, Unauthorized = 401 }
);
crate::operation_errors!(
    /// Errors of operations on one of the caller's files.
    FileErrors { BadRequest = 400, Unauthorized = 401, NotFound = 404, Conflict = 409 }
);
crate::operation_errors!(
    /// Errors of downloads.
    DownloadErrors { BadRequest = 400, Unauthorized = 401, NotFound = 404, Conflict = 409 }
);
crate::operation_errors!(
    /// Errors of signed-URL downloads.
    SignedErrors { BadRequest = 400, Forbidden = 403, NotFound = 404, Conflict = 409 }
);
crate::operation_errors!(
    /// Errors of the single-request upload.
    SingleUploadErrors {
        BadRequest = 400,
        Unauthorized = 401,
        NotFound = 404,
        Conflict = 409,
        PreconditionFailed = 412,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
        TooManyRequests = 429,
        InsufficientStorage = 507,
    }
);
crate::operation_errors!(
    /// Errors of rename.
    RenameErrors {
        BadRequest = 400,
        Unauthorized = 401,
        NotFound = 404,
        Conflict = 409,
        PreconditionFailed = 412,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
    }
);
crate::operation_errors!(
    /// Errors of copy.
    CopyErrors {
        BadRequest = 400,
        Unauthorized = 401,
        NotFound = 404,
        Conflict = 409,
        PreconditionFailed = 412,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
        InsufficientStorage = 507,
    }
);

/// Copy answers.
#[derive(ApiResponse)]
pub enum CopyResponse {
    /// The copy (or, with `replace`, the file that got the content).
    #[oai(status = 201)]
    Created(Json<FileInfo>),
}

/// File operations.
pub struct FileApi;

#[OpenApi(prefix_path = "/file", tag = "Tag::Files")]
impl FileApi {
    /// List the caller's files, newest first, whatever folder they are in
    /// (not those in the trash).
    #[oai(path = "/query", method = "get", operation_id = "file_query")]
    async fn query(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Page size, 1-1000 (default 100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<i64>,
        /// Files to skip (default 0).
        #[oai(default, validator(minimum(value = "0"), maximum(value = "1000000000")))]
        offset: Query<i64>,
    ) -> Result<Json<FileList>, QueryErrors> {
        let (files, total) = state.services.files.list(&auth.0, limit.0, offset.0).await?;
        let mut paths = PathCache::default();
        let mut infos = Vec::with_capacity(files.len());
        for f in files {
            let path = paths.file_path(&state.services.tree, &auth.0, &f).await?;
            infos.push(FileInfo { path: Some(path), ..FileInfo::from(f) });
        }
        Ok(Json(FileList { files: infos, total, limit: limit.0, offset: offset.0 }))
    }

    /// Download one of the caller's files.
    ///
    /// Honours a single `Range: bytes=…` (206; 416 when it lies outside the
    /// file; several ranges get the whole file) and `If-None-Match` (304).
    #[oai(path = "/download", method = "get", operation_id = "file_download")]
    #[allow(clippy::too_many_arguments, reason = "each argument is one extractor of the request")]
    async fn download(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The file's id.
        #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
        id: Query<Option<String>>,
        /// SHA-1 of the file: instead of `id` while it names exactly one of your
        /// files; with `id`, the file must have it (else 404). Neither: 404.
        #[oai(validator(pattern = r"^[0-9A-Fa-f]{40}$"))]
        filehash: Query<Option<String>>,
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
    ) -> Result<DownloadResponse, DownloadErrors> {
        let file = file_ref(id.0.as_deref(), filehash.0.as_deref())?;
        let (entry, stored) = state.services.files.owned(&auth.0, &file).await?;
        let conditions = Conditions {
            range: range.0.as_deref(),
            if_range: if_range.0.as_deref(),
            if_none_match: if_none_match.0.as_deref(),
        };
        Ok(serve(&state, &entry, &stored, conditions, false).await?)
    }

    /// Get a time-limited URL that downloads the file without a token.
    ///
    /// When the file store is S3-compatible (Aliyun OSS, S3, Garage…) the URL
    /// is presigned by the store and points at it; otherwise it points at
    /// `/file/signed` on this server, signed with HMAC-SHA256. Either way
    /// `Range` works. `expires_in` is in seconds (default `PAN_URL_TTL`, at
    /// most 7 days).
    #[oai(path = "/downloadurl", method = "post", operation_id = "file_download_url")]
    async fn download_url(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The file's id.
        #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
        id: Query<Option<String>>,
        /// SHA-1 of the file: instead of `id` while it names exactly one of your
        /// files; with `id`, the file must have it (else 404). Neither: 404.
        #[oai(validator(pattern = r"^[0-9A-Fa-f]{40}$"))]
        filehash: Query<Option<String>>,
        /// Lifetime of the URL in seconds, 1-604800.
        #[oai(validator(minimum(value = "1"), maximum(value = "604800")))]
        expires_in: Query<Option<u64>>,
        /// A preview URL: always on this server (so the page's own policy
        /// lets `<img>`, `<video>` and `<audio>` load it, whatever the store),
        /// served to be shown in place when a browser can show the file.
        inline: Query<Option<bool>>,
    ) -> Result<Json<DownloadUrl>, FileErrors> {
        let file = file_ref(id.0.as_deref(), filehash.0.as_deref())?;
        let (entry, stored) = state.services.files.owned(&auth.0, &file).await?;
        // A store that offers its own URLs serves downloads itself.
        let disposition = content_disposition(&entry.filename);
        let inline = inline.0.unwrap_or(false);
        let (link, expires_at) =
            state.services.files.download_link(&auth.0, &entry, &stored, expires_in.0, &disposition, inline).await?;
        let (kid, sig, content) = match link {
            DownloadLink::Presigned(url) => return Ok(Json(DownloadUrl { url, expires_at })),
            DownloadLink::Signed { kid, sig, content } => (kid, sig, content),
        };
        let base = &state.public_base;
        let mut url = format!(
            "{base}/file/signed?id={}&content={content}&uid={}&expires={expires_at}&kid={kid}&sig={sig}",
            entry.id, auth.0.id
        );
        if inline {
            url.push_str("&inline=true");
        }
        Ok(Json(DownloadUrl { url, expires_at }))
    }

    /// Download a file through a signed URL from `/file/downloadurl`.
    ///
    /// No token: the signature is the credential. Expired or tampered URLs
    /// get 403. Honours `Range` and `If-None-Match` like `/file/download`.
    #[oai(path = "/signed", method = "get", operation_id = "file_signed_download")]
    #[allow(clippy::too_many_arguments, reason = "each argument is one extractor of the request")]
    async fn signed(
        &self,
        state: Data<&AppState>,
        /// The file's id.
        #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
        id: Query<Option<String>>,
        /// SHA-1 of the file (links made before files had ids).
        #[oai(validator(pattern = r"^[0-9A-Fa-f]{40}$"))]
        filehash: Query<Option<String>>,
        /// The user the URL was made for.
        uid: Query<i64>,
        /// Expiry (Unix seconds).
        expires: Query<i64>,
        /// The id of the key that signed the URL (absent in URLs made
        /// before keys had ids). An unknown or dropped key is refused like
        /// a bad signature.
        kid: Query<Option<String>>,
        /// HMAC-SHA256 signature, hex.
        sig: Query<String>,
        /// The content the URL is bound to: once the file's content is
        /// replaced, the URL serves the content it was made for (now a
        /// version) until that goes, then 404 (absent in URLs made before
        /// URLs were bound).
        content: Query<Option<i64>>,
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
    ) -> Result<DownloadResponse, SignedErrors> {
        let forbidden =
            |code: ErrorCode, message: &str| SignedErrors::Forbidden(Json(crate::error::ErrorBody::new(code, message)));
        let Ok(file) = file_ref(id.0.as_deref(), filehash.0.as_deref()) else {
            return Err(forbidden(ErrorCode::UrlInvalid, "malformed link"));
        };
        let (entry, stored) = match state
            .services
            .files
            .open_signed(&file, uid.0, expires.0, (kid.0.as_deref(), content.0), &sig.0)
            .await?
        {
            Ok(found) => found,
            Err(shared::files::links::LinkError::Expired) => {
                return Err(forbidden(ErrorCode::UrlExpired, "this link has expired"));
            }
            Err(shared::files::links::LinkError::Invalid) => {
                return Err(forbidden(ErrorCode::UrlInvalid, "this link is not valid"));
            }
        };
        let inline = inline.0.unwrap_or(false);
        let conditions = Conditions {
            range: range.0.as_deref(),
            if_range: if_range.0.as_deref(),
            if_none_match: if_none_match.0.as_deref(),
        };
        Ok(serve(&state, &entry, &stored, conditions, inline).await?)
    }

    /// Upload a small file in one multipart request.
    ///
    /// Limited to `PAN_MAX_SINGLE_UPLOAD` bytes (64 MiB by default); larger
    /// files use `/file/mupload`. Identical content is stored once.
    #[oai(path = "/upload", method = "post", operation_id = "file_upload", transform = "single_upload_limit")]
    async fn upload(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        form: SingleUpload,
    ) -> Result<UploadResponse, SingleUploadErrors> {
        // A part without any name is stored as "untitled" rather than refused.
        let name = form.filename.as_deref().or(form.file.file_name()).filter(|n| !n.is_empty()).unwrap_or("untitled");
        let name = name.to_owned();
        let name = FileName::parse(&name)?;
        let place = Placement {
            folder: form.folder.as_deref().filter(|f| !f.is_empty()).map(FolderId::parse).transpose()?,
            rule: folders::rule(form.on_conflict, NameRule::Rename),
            if_match: form.if_match.as_deref().filter(|h| !h.is_empty()).map(Sha256Hex::parse).transpose()?,
        };
        let mtime = form.mtime.map(Mtime::parse).transpose()?;
        let size = form.file.size() as u64;
        let body = form.file.into_async_read();
        let file = state.services.files.upload_single(&auth.0, &name, &place, mtime, (size, None), body).await?;
        Ok(UploadResponse::Created(Json(file_with_path(&state, &auth.0, file).await?)))
    }

    /// Rename one of the caller's files.
    #[oai(path = "/rename", method = "post", operation_id = "file_rename", transform = "json_body_limit")]
    async fn rename(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<RenameRequest>,
    ) -> Result<Json<FileInfo>, RenameErrors> {
        let file = file_ref(body.id.as_deref(), body.filehash.as_deref())?;
        let name = FileName::parse(&body.filename)?;
        let rule = folders::json_rule(&body.on_conflict, NameRule::Refuse)?;
        let if_match = body.if_match.as_deref().map(Sha256Hex::parse).transpose()?;
        let f = state.services.files.rename(&auth.0, &file, &name, (rule, if_match.as_ref())).await?;
        Ok(Json(file_with_path(&state, &auth.0, f).await?))
    }

    /// Move and/or rename one of the caller's files.
    ///
    /// Into `to` (a folder id; the empty string: the root; absent: where it
    /// is), as `name` (absent: its name). A taken name is refused unless
    /// `on_conflict` is `rename`.
    #[oai(path = "/move", method = "post", operation_id = "file_move", transform = "json_body_limit")]
    async fn move_file(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<folders::MoveRequest>,
    ) -> Result<Json<FileInfo>, RenameErrors> {
        let id = EntryId::parse(&body.id)?;
        let (name, rule) = body.name_and_rule()?;
        let if_match = body.if_match()?;
        let how = (rule, if_match.as_ref());
        let f = state.services.tree.move_file(&auth.0, id.as_str(), body.to.as_deref(), name.as_ref(), how).await?;
        Ok(Json(file_with_path(&state, &auth.0, f).await?))
    }

    /// Copy one of the caller's files.
    ///
    /// A new entry for the same content (no bytes are copied; it counts
    /// against the quota as a file of its own) into `to` (a folder id; the
    /// empty string: the root; absent: the same folder) as `name` (absent:
    /// its name). A taken name is refused unless `on_conflict` is `rename`
    /// or `replace` (the file of that name gets this content; its own is
    /// kept as a version). The copy's versions start empty.
    #[oai(path = "/copy", method = "post", operation_id = "file_copy", transform = "json_body_limit")]
    async fn copy_file(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<folders::MoveRequest>,
    ) -> Result<CopyResponse, CopyErrors> {
        let id = EntryId::parse(&body.id)?;
        let (name, rule) = body.name_and_rule()?;
        let if_match = body.if_match()?;
        let how = (rule, if_match.as_ref());
        let f = state.services.files.copy(&auth.0, id.as_str(), body.to.as_deref(), name.as_ref(), how).await?;
        Ok(CopyResponse::Created(Json(file_with_path(&state, &auth.0, f).await?)))
    }

    /// Delete one of the caller's files.
    ///
    /// Into the trash (see `/trash/list`), unless `permanent=true`. Other
    /// users' copies of the same content are untouched; the bytes go when
    /// nobody has the file any more, in a folder or a trash.
    #[oai(path = "/delete", method = "delete", operation_id = "file_delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The file's id.
        #[oai(validator(pattern = r"^[0-9a-f]{32}$"))]
        id: Query<Option<String>>,
        /// SHA-1 of the file: instead of `id` while it names exactly one of your
        /// files; with `id`, the file must have it (else 404). Neither: 404.
        #[oai(validator(pattern = r"^[0-9A-Fa-f]{40}$"))]
        filehash: Query<Option<String>>,
        /// Delete for good instead of into the trash (default false).
        #[oai(default)]
        permanent: Query<bool>,
    ) -> Result<DeleteResponse, FileErrors> {
        let file = file_ref(id.0.as_deref(), filehash.0.as_deref())?;
        state.services.files.delete(&auth.0, &file, permanent.0).await?;
        Ok(DeleteResponse::Deleted)
    }
}

fn default_limit() -> i64 {
    100
}

/// The file a request names: by `id`, by `filehash`, or by both (the entry
/// `id` when its content has that SHA-1). Neither names no file: the use
/// case answers 404 `FILE_NOT_FOUND`, as for any name that finds nothing.
fn file_ref(id: Option<&str>, filehash: Option<&str>) -> shared::Result<FileRef> {
    Ok(match (id, filehash) {
        (Some(id), None) => FileRef::Entry(EntryId::parse(id)?),
        (None, Some(hash)) => FileRef::Sha1(Sha1Hex::parse(hash)?),
        (Some(id), Some(hash)) => FileRef::Both(EntryId::parse(id)?, Sha1Hex::parse(hash)?),
        (None, None) => FileRef::Nothing,
    })
}

/// Builds the download response for a file (shared with signed URLs).
/// A stored file's ETag: the content's identity, SHA-256 (SHA-1 only for
/// content stored before pan recorded SHA-256), so colliding SHA-1
/// contents never share one.
pub fn etag_of(stored: &shared::domain::StoredFile) -> String {
    format!("\"{}\"", stored.sha256.as_deref().unwrap_or(&stored.filehash))
}

/// Whether `If-None-Match` names `etag` (or `*`): the client's copy is current.
pub fn not_modified(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// What a download request asks of the bytes: a `Range`, which counts only
/// while `If-Range` (when given) still names the file's `ETag` or
/// `Last-Modified` (a client resuming a partial copy of content that
/// changed gets the whole new one, RFC 9110 §13.1.5), and `If-None-Match`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    /// `Range`.
    pub range: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
}

/// With `inline`, a file a browser can show ([`preview_type`]) is served
/// as its media type to be shown in place; anything else downloads.
pub async fn serve(
    state: &AppState,
    entry: &UserFile,
    stored: &shared::domain::StoredFile,
    conditions: Conditions<'_>,
    inline: bool,
) -> ApiResult<DownloadResponse> {
    let etag = etag_of(stored);
    if not_modified(conditions.if_none_match, &etag) {
        return Ok(DownloadResponse::NotModified(etag));
    }
    let modified = http_date(entry.mtime);
    let range = match conditions.if_range.map(str::trim) {
        // A strong ETag or the exact date still matches; anything else does not.
        Some(v) if v != etag && v != modified => None,
        _ => conditions.range,
    };
    let size = stored.filesize as u64;
    let range: Option<ByteRange> = match files::parse_range(range, size) {
        Ok(range) => range,
        Err(e) => {
            let body = crate::error::ErrorBody::new(ErrorCode::RangeNotSatisfiable, e.to_string());
            return Ok(DownloadResponse::RangeNotSatisfiable(Json(body), format!("bytes */{size}")));
        }
    };
    let body = Body::from_bytes_stream(state.services.files.read(stored, range).await?);
    let (media_type, disposition) = match preview_type(&entry.filename).filter(|_| inline) {
        Some(t) => (t, inline_disposition(&entry.filename)),
        None => ("application/octet-stream", content_disposition(&entry.filename)),
    };
    let (media_type, nosniff, csp) = (media_type.to_owned(), "nosniff".to_owned(), DOWNLOAD_CSP.to_owned());
    Ok(match range {
        Some(r) => DownloadResponse::Partial(
            Binary(body),
            r.end - r.start + 1,
            format!("bytes {}-{}/{size}", r.start, r.end),
            disposition,
            etag,
            media_type,
            nosniff,
            csp,
            modified,
        ),
        None => DownloadResponse::Full(
            Binary(body),
            size,
            disposition,
            etag,
            "bytes".into(),
            media_type,
            nosniff,
            csp,
            modified,
        ),
    })
}

/// Unix seconds as an HTTP date (RFC 9110 IMF-fixdate), e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(secs: i64) -> String {
    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}
