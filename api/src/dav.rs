//! WebDAV in the Nextcloud dialect: pan's tree at
//! `/remote.php/dav/files/<username>/` (the path rclone's `nextcloud`
//! vendor recognises) and `/remote.php/webdav/`, for OS mounts, rclone and
//! apps. pan's own handler on poem, not the `dav-server` crate: every
//! method is a thin adapter over the same use cases as the REST API (a
//! folder DELETE is one trash move, an overwriting MOVE or COPY onto a file
//! is one replace keeping a version, a PUT is a server-hashed upload that
//! replaces the file only once its content is whole and verified), and its
//! rules are pan's (no header changes the depth rules; a PROPFIND that
//! cannot read its listing fails, it never ends a 207 with members missing).
//!
//! Authentication is HTTP Basic with the username and an app password
//! (a SHA-256 lookup; wrong ones count against the app-password limits).
//! Errors are a status and a short XML body, as SabreDAV sends them.
//! Outside the OpenAPI document: OpenAPI cannot describe PROPFIND.
//!
//! - [`xml`]: request bodies read, answers written.
//! - [`chunked`]: rclone's chunked upload under `/remote.php/dav/uploads/<username>/`.
//! - [`locks`]: LOCK, UNLOCK, and the `If` header writes are checked against.
//! - [`propfind`]: PROPFIND, streamed.
//! - [`proppatch`]: PROPPATCH (dead properties, modification times).
//! - [`write`]: PUT, MKCOL, DELETE, COPY, MOVE.

pub mod chunked;
pub mod locks;
pub mod propfind;
pub mod proppatch;
pub mod write;
pub mod xml;

use base64::Engine;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use shared::domain::{EntryId, Folder, User, UserFile};
use shared::tree::Resolved;
use shared::{Error, ErrorCode};

use crate::state::AppState;

/// Where the WebDAV tree is mounted in the route tree.
pub const MOUNT: &str = "/remote.php";
/// The files of `<username>`: `/remote.php/dav/files/<username>/…`.
const FILES: &str = "/remote.php/dav/files/";
/// The alias without a username: `/remote.php/webdav/…`.
const WEBDAV: &str = "/remote.php/webdav";

/// What `OPTIONS` lists.
const ALLOW: &str = "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH, LOCK, UNLOCK";

/// The WebDAV endpoint, to nest at [`MOUNT`].
pub fn endpoint() -> impl Endpoint {
    poem::endpoint::make(|req: Request| async move { handle(req).await })
}

/// An error as WebDAV clients get it: a status and SabreDAV's XML.
#[derive(Debug)]
pub struct DavError {
    /// The status.
    pub status: StatusCode,
    /// What went wrong, for people.
    pub message: String,
    /// An RFC 4918 precondition element to name (without prefix).
    pub condition: Option<&'static str>,
    /// Seconds to wait, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl DavError {
    /// `status` with `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        DavError { status, message: message.into(), condition: None, retry_after: None }
    }

    /// A 400.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// A 404.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "nothing of yours is at this path")
    }

    /// A 405.
    pub fn not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, message)
    }

    /// A 409: a parent collection is missing (RFC 4918 §9.7.1, §9.3.1).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// SabreDAV's exception class for a status.
    fn exception(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "BadRequest",
            401 => "NotAuthenticated",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            412 => "PreconditionFailed",
            413 => "TooLarge",
            415 => "UnsupportedMediaType",
            416 => "RequestedRangeNotSatisfiable",
            423 => "Locked",
            429 => "TooManyRequests",
            501 => "NotImplemented",
            503 => "ServiceUnavailable",
            507 => "InsufficientStorage",
            _ => "ServerError",
        }
    }
}

impl From<Error> for DavError {
    /// The status the error's code has (the REST API's), its message except
    /// where that would tell about the server's insides.
    fn from(e: Error) -> Self {
        let status = StatusCode::from_u16(e.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut out = DavError::new(status, e.to_string());
        match &e {
            Error::TooMany { retry_after, .. } | Error::Busy { retry_after, .. } => {
                out.retry_after = Some(*retry_after)
            }
            Error::ChunkBusy { .. } => out.retry_after = Some(1),
            Error::Unavailable { what, .. } => {
                tracing::warn!(error = %e, "backend unavailable");
                out.message = format!("{what} is unavailable, retry later");
                out.retry_after = Some(5);
            }
            Error::DiskFull { .. } => {
                tracing::error!(error = %e, "disk full");
                out.message = "the server's disk is full; retry later".into();
                out.retry_after = Some(60);
            }
            Error::Internal { .. } | Error::BadSetting { .. } => {
                tracing::error!(error = ?e, "internal error");
                out.message = "internal error; see the server log".into();
            }
            _ => {}
        }
        if out.status.is_server_error() && out.status != StatusCode::INTERNAL_SERVER_ERROR {
            out.retry_after.get_or_insert(5);
        }
        out
    }
}

impl IntoResponse for DavError {
    fn into_response(self) -> Response {
        let body = xml::error_body(self.exception(), &self.message, self.condition);
        let mut resp = Response::builder()
            .status(self.status)
            .content_type("application/xml; charset=utf-8")
            .body(Body::from_string(body));
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"pan\", charset=\"UTF-8\""));
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(ALLOW));
        }
        resp
    }
}

/// What handlers return.
pub type DavResult<T = Response> = Result<T, DavError>;

/// Characters a path segment keeps as they are in an href: RFC 3986's
/// unreserved ones and a few sub-delimiters clients expect unencoded.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']')
    .add(b'&')
    .add(b'\'')
    .add(b';')
    .add(b'=')
    .add(b'+');

/// A name as one percent-encoded path segment.
pub fn encode_segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// A request's path in the WebDAV tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The username the path names (`None`: the `/remote.php/webdav` alias).
    pub user: Option<String>,
    /// The names below the user's root, decoded.
    pub names: Vec<String>,
}

impl Target {
    /// Parses a request path (percent-encoded, as sent). `Ok(None)`: not a
    /// path of the files tree. A segment whose decoding holds `/` or NUL,
    /// or is not UTF-8, is 400: a name never becomes two.
    pub fn parse(path: &str) -> DavResult<Option<Target>> {
        if path.contains('#') {
            return Err(DavError::bad("a path holds no fragment ('#' is %23 in a name)"));
        }
        let (user, rest) = if let Some(rest) = path.strip_prefix(FILES) {
            let (user, rest) = rest.split_once('/').unwrap_or((rest, ""));
            (Some(decode(user)?), rest)
        } else if let Some(rest) = path.strip_prefix(WEBDAV).filter(|r| r.is_empty() || r.starts_with('/')) {
            (None, rest)
        } else {
            return Ok(None);
        };
        if user.as_deref() == Some("") {
            return Ok(None);
        }
        let names = rest.split('/').filter(|s| !s.is_empty()).map(decode).collect::<DavResult<Vec<_>>>()?;
        Ok(Some(Target { user, names }))
    }

    /// The path as the tree tells names apart (each name in NFC, as the
    /// tree compares them): `/a/b`. Locks are kept and checked by it, so a
    /// name sent decomposed (as macOS does) meets the lock taken composed.
    pub fn tree_path(&self) -> String {
        format!("/{}", self.keys().join("/"))
    }

    /// The names as the tree tells them apart (NFC): for comparing paths.
    pub fn keys(&self) -> Vec<String> {
        self.names.iter().map(|n| shared::domain::name_key(n)).collect()
    }

    /// The parent's names and the last name (`None` for the root).
    pub fn split_last(&self) -> Option<(&str, &[String])> {
        self.names.split_last().map(|(last, parent)| (last.as_str(), parent))
    }
}

/// Decodes one path segment.
fn decode(segment: &str) -> DavResult<String> {
    let name = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| DavError::bad("a path segment is not UTF-8 once decoded"))?
        .into_owned();
    if name.contains('/') || name.contains('\0') {
        return Err(DavError::bad("a path segment holds an encoded '/' or NUL"));
    }
    Ok(name)
}

/// What a path names.
#[derive(Debug, Clone)]
pub enum Node {
    /// The user's root.
    Root,
    /// A folder.
    Folder(Folder),
    /// A file.
    File(UserFile),
}

impl Node {
    /// The folder id to list or place into (`""`: the root), or `None` for a file.
    pub fn folder_id(&self) -> Option<&str> {
        match self {
            Node::Root => Some(""),
            Node::Folder(d) => Some(&d.id),
            Node::File(_) => None,
        }
    }
}

/// One authenticated request's context.
pub struct Dav {
    /// Everything the handlers reach.
    pub state: AppState,
    /// The caller.
    pub user: User,
    /// The href prefix of the user's root, percent-encoded, without a
    /// trailing slash: `/remote.php/dav/files/alice` or `/remote.php/webdav`.
    pub base: String,
}

impl Dav {
    /// What `names` names, or `None` when nothing is there (a file on the
    /// way counts as nothing).
    pub async fn resolve(&self, target: &Target) -> DavResult<Option<Node>> {
        self.resolve_names(&target.names).await
    }

    /// The same for a list of names.
    pub async fn resolve_names(&self, names: &[String]) -> DavResult<Option<Node>> {
        let path = format!("/{}", names.join("/"));
        match self.state.services.tree.resolve(&self.user, &path).await {
            Ok(Resolved::Root) => Ok(Some(Node::Root)),
            Ok(Resolved::Item(shared::domain::TreeItem::Folder(d))) => Ok(Some(Node::Folder(d))),
            Ok(Resolved::Item(shared::domain::TreeItem::File(f))) => Ok(Some(Node::File(f))),
            Err(Error::FileNotFound | Error::FolderNotFound) => Ok(None),
            Err(Error::Invalid { code: ErrorCode::InvalidPath, message }) => Err(DavError::bad(message)),
            Err(e) => Err(e.into()),
        }
    }

    /// The folder id of the collection `names` must name (the parent of
    /// something to make): 409 when it is missing or a file.
    pub async fn parent_folder(&self, names: &[String]) -> DavResult<String> {
        match self.resolve_names(names).await? {
            Some(node) => node
                .folder_id()
                .map(str::to_owned)
                .ok_or_else(|| DavError::conflict("the parent is a file, not a collection")),
            None => Err(DavError::conflict("the parent collection does not exist")),
        }
    }

    /// The href of `names` (a collection's ends with `/`).
    pub fn href(&self, names: &[String], collection: bool) -> String {
        let mut out = self.base.clone();
        for n in names {
            out.push('/');
            out.push_str(&encode_segment(n));
        }
        if collection {
            out.push('/');
        }
        out
    }
}

/// Answers one WebDAV request: never a poem error, so the JSON error
/// rewriting of the REST API leaves it alone.
async fn handle(mut req: Request) -> Response {
    let Some(state) = req.data::<AppState>().cloned() else {
        return DavError::new(StatusCode::INTERNAL_SERVER_ERROR, "no state").into_response();
    };
    let path = req.original_uri().path().to_owned();
    if req.method() == Method::OPTIONS {
        return options();
    }
    match chunked::UploadPath::parse(&path) {
        Ok(Some(at)) => return uploads(state, req, at).await,
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    let target = match Target::parse(&path) {
        Ok(Some(t)) => t,
        Ok(None) => return DavError::not_found().into_response(),
        Err(e) => return e.into_response(),
    };
    let user = match authenticate(&state, &req).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    if target.user.as_deref().is_some_and(|name| name != user.username) {
        return DavError::forbidden("this path is another user's").into_response();
    }
    let base = match &target.user {
        Some(name) => format!("{FILES}{}", encode_segment(name)),
        None => WEBDAV.to_owned(),
    };
    let dav = Dav { state, user, base };
    let body = req.take_body();
    let method = req.method().as_str().to_owned();
    let answer = match method.as_str() {
        "GET" | "HEAD" => get(&dav, &req, &target).await,
        "PROPFIND" => propfind::propfind(&dav, &req, &target, body).await,
        "PROPPATCH" => proppatch::proppatch(&dav, &req, &target, body).await,
        "PATCH" => recalculate(&dav, &req, &target).await,
        "LOCK" => locks::lock(&dav, &req, &target, body).await,
        "UNLOCK" => locks::unlock(&dav, &req, &target).await,
        "PUT" => write::put(&dav, &req, &target, body).await,
        "MKCOL" => write::mkcol(&dav, &req, &target, body).await,
        "DELETE" => write::delete(&dav, &req, &target).await,
        "COPY" => write::copy_or_move(&dav, &req, &target, false).await,
        "MOVE" => write::copy_or_move(&dav, &req, &target, true).await,
        _ => Err(DavError::not_allowed(format!("{method} is not supported here"))),
    };
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// A request under `/remote.php/dav/uploads/<username>/`, by that user only.
async fn uploads(state: AppState, mut req: Request, at: chunked::UploadPath) -> Response {
    let user = match authenticate(&state, &req).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    if at.user != user.username {
        return DavError::forbidden("this path is another user's").into_response();
    }
    let dav = Dav { state, base: format!("{FILES}{}", encode_segment(&user.username)), user };
    let body = req.take_body();
    chunked::handle(&dav, &req, &at, body).await.unwrap_or_else(IntoResponse::into_response)
}

/// `OPTIONS`: what the tree speaks (no credentials needed: it tells nothing
/// about anyone).
fn options() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("DAV", "1, 2, 3")
        .header("MS-Author-Via", "DAV")
        .header(header::ALLOW, ALLOW)
        .header("Accept-Ranges", "bytes")
        .header(header::CONTENT_LENGTH, "0")
        .finish()
}

/// The caller, by HTTP Basic with their username and an app password.
/// Only wrong passwords count against the limits; the account password is
/// never hashed here (it is simply not an app password: 401).
async fn authenticate(state: &AppState, req: &Request) -> DavResult<User> {
    let unauthorized = |m: &str| DavError::new(StatusCode::UNAUTHORIZED, m);
    let Some(value) = req.header(header::AUTHORIZATION) else {
        return Err(unauthorized("sign in with your username and an app password (HTTP Basic)"));
    };
    let (scheme, encoded) = value.trim().split_once(' ').unwrap_or(("", ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(unauthorized("only HTTP Basic with an app password is accepted here"));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| unauthorized("malformed Basic credentials"))?;
    let (username, password) = decoded.split_once(':').ok_or_else(|| unauthorized("malformed Basic credentials"))?;
    match state.services.accounts.authenticate_app_password(username, password).await? {
        Some(user) => Ok(user),
        None => {
            state.rate_limits.wrong_app_password(req, username).await?;
            Err(unauthorized("wrong username or app password (app passwords are made at /usr/apppassword/create)"))
        }
    }
}

/// `PATCH` with `X-Recalculate-Hash: sha1` (what rclone sends after
/// setting a time, as Nextcloud wants): 200 with `OC-Checksum:
/// SHA1:<hex>`. pan hashed every byte as it arrived, so nothing is
/// recalculated; no other PATCH is supported.
async fn recalculate(dav: &Dav, req: &Request, target: &Target) -> DavResult {
    if !req.header("x-recalculate-hash").is_some_and(|v| v.trim().eq_ignore_ascii_case("sha1")) {
        return Err(DavError::not_allowed("PATCH only recalculates a hash (X-Recalculate-Hash: sha1)"));
    }
    let file = match dav.resolve(target).await? {
        Some(Node::File(f)) => f,
        Some(_) => return Err(DavError::bad("a collection has no hash")),
        None => return Err(DavError::not_found()),
    };
    let mut resp = Response::builder().status(StatusCode::OK).header(header::CONTENT_LENGTH, "0").finish();
    if let Ok(v) = HeaderValue::from_str(&format!("SHA1:{}", file.filehash.to_ascii_lowercase())) {
        resp.headers_mut().insert("OC-Checksum", v);
    }
    Ok(resp)
}

/// `GET` and `HEAD` of a file: the download's answer (Range, If-Range,
/// ETag, `attachment`, `nosniff`, the download CSP), typed as PROPFIND's
/// `getcontenttype` says.
async fn get(dav: &Dav, req: &Request, target: &Target) -> DavResult {
    let entry = match dav.resolve(target).await? {
        Some(Node::File(f)) => f,
        Some(_) => return Err(DavError::not_allowed("a collection has no content to GET; PROPFIND lists it")),
        None => return Err(DavError::not_found()),
    };
    let id = EntryId::parse(&entry.id)?;
    let (entry, stored) = dav.state.services.files.owned(&dav.user, &shared::files::FileRef::Entry(id)).await?;
    let conditions = crate::routes::files::Conditions {
        range: req.header(header::RANGE),
        if_range: req.header(header::IF_RANGE),
        if_none_match: req.header(header::IF_NONE_MATCH),
    };
    let answer = crate::routes::files::serve(&dav.state, &entry, &stored, conditions, false).await;
    let mut resp = match answer {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&entry.id) {
        resp.headers_mut().insert("OC-FileId", v);
    }
    // The type PROPFIND's getcontenttype names, where it is one that cannot
    // run script (never HTML or SVG: those stay octet-stream attachments).
    let plain = resp.headers().get(header::CONTENT_TYPE).is_some_and(|t| t == "application/octet-stream");
    if plain && let Some(kind) = crate::routes::files::preview_type(&entry.filename) {
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_a_user_and_decoded_names() {
        let t = Target::parse("/remote.php/dav/files/alice/a%20b/c%C3%A9.txt").unwrap().unwrap();
        assert_eq!(t.user.as_deref(), Some("alice"));
        assert_eq!(t.names, ["a b", "cé.txt"]);
        let decomposed = Target::parse("/remote.php/dav/files/alice/a%20b/ce%CC%81.txt").unwrap().unwrap();
        assert_eq!(decomposed.tree_path(), t.tree_path(), "one path for locks, composed or not");
        let t = Target::parse("/remote.php/webdav/").unwrap().unwrap();
        assert_eq!((t.user, t.names.len()), (None, 0));
        assert_eq!(Target::parse("/remote.php/dav/files/alice").unwrap().unwrap().names.len(), 0);
        assert!(Target::parse("/remote.php/webdavx").unwrap().is_none());
        assert!(Target::parse("/remote.php/dav/files/").unwrap().is_none());
        for bad in ["/remote.php/webdav/a%2Fb", "/remote.php/webdav/a%00", "/remote.php/webdav/%FF"] {
            assert_eq!(Target::parse(bad).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn hrefs_encode_what_a_segment_cannot_hold() {
        assert_eq!(encode_segment("a b#?%/é"), "a%20b%23%3F%25%2F%C3%A9");
        assert_eq!(encode_segment("report (1).pdf"), "report%20(1).pdf");
    }
}
