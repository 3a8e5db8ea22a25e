//! tus 1.0 at `/tus/`: Uppy, tus-js-client, tuspy and every other tus
//! client upload to pan unchanged. Core protocol plus creation,
//! creation-with-upload, creation-defer-length, termination, checksum
//! (sha1, sha256), expiration and concatenation. A thin adapter like every route: it parses
//! the tus headers, authenticates (a bearer token, or `Basic` with the
//! username and an app password), calls the upload use cases
//! (`shared::upload::tus`) and writes the tus headers back. Errors carry
//! pan's `{code, message}` body. Not part of the OpenAPI spec: tus has its
//! own (the README documents this front door).

use std::collections::HashMap;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::payload::Json;
use shared::ErrorCode;
use shared::domain::{FileName, FolderId, Mtime, NameRule, UploadLink, User};
use shared::upload::BodyChecksum;
use shared::upload::tus::{TusCreate, TusPatch, TusUpload};

use super::mupload::{DRAIN_LIMIT, DRAIN_TIME, drain};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use shared::accounts::limits::SlotOwner;

/// The one protocol version served.
pub const TUS_VERSION: &str = "1.0.0";
/// The extensions served, as `OPTIONS` lists them.
pub const TUS_EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation";
/// The checksum algorithms `Upload-Checksum` may name.
pub const TUS_CHECKSUMS: &str = "sha1,sha256";
/// The media type of a `PATCH` body.
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// The longest `Upload-Metadata` taken, in bytes.
const METADATA_MAX: usize = 8 << 10;
/// The name of a file whose metadata gives none.
const DEFAULT_NAME: &str = "upload";

/// The tus endpoint, to nest at `/tus`.
pub fn endpoint() -> impl Endpoint {
    poem::endpoint::make(|req: Request| async move {
        // The origin may use these answers only if the operator named it.
        let origin = req.header(header::ORIGIN).map(str::to_owned);
        let allowed =
            req.data::<AppState>().and_then(|state| origin.filter(|o| state.tus_cors_origins.iter().any(|a| a == o)));
        with_tus_headers(handle(req).await, allowed)
    })
}

/// Who sends: an account, or a stranger through one of its upload links
/// (then the account is the link's owner, whose quota counts).
struct Caller {
    user: User,
    link: Option<UploadLink>,
}

/// A failed tus request: the answer to give.
type TusResult<T> = Result<T, Box<Response>>;

async fn handle(mut req: Request) -> Response {
    let Some(state) = req.data::<AppState>().cloned() else {
        return ApiError::new(ErrorCode::Internal, "no state").into_response();
    };
    // Clients behind proxies that only pass GET and POST send the method here.
    let method = match req.header("x-http-method-override").map(str::trim) {
        Some(m) if req.method() == Method::POST => m.parse().unwrap_or_else(|_| req.method().clone()),
        _ => req.method().clone(),
    };
    let path = req.uri().path().trim_matches('/').to_owned();
    if method == Method::OPTIONS {
        return options(&state);
    }
    if req.header("tus-resumable").map(str::trim) != Some(TUS_VERSION) {
        let mut resp = tus_error(
            ErrorCode::TusVersionUnsupported,
            format!("send Tus-Resumable: {TUS_VERSION} (the one version this server speaks)"),
        );
        resp.headers_mut().insert("tus-version", HeaderValue::from_static(TUS_VERSION));
        return *resp;
    }
    let caller = match authenticate(&req, &state).await {
        Ok(caller) => caller,
        Err(resp) => return *resp,
    };
    if !path.is_empty()
        && let Err(resp) = came_through_the_link(&state, &caller, &path).await
    {
        return *resp;
    }
    let answer = match (path.as_str(), &method) {
        ("", &Method::POST) => create(&mut req, &state, &caller).await,
        ("", _) => Err(not_allowed("POST, OPTIONS")),
        (id, &Method::HEAD) => head(&state, &caller, id).await,
        (id, &Method::PATCH) => patch(&mut req, &state, &caller, id).await,
        (id, &Method::DELETE) => terminate(&state, &caller, id).await,
        (_, _) => Err(not_allowed("HEAD, PATCH, DELETE, OPTIONS")),
    };
    answer.unwrap_or_else(|resp| *resp)
}

/// An upload link's holder may touch only the uploads made through that
/// link (404 for any other, as for an unknown id): the link acts as its
/// owner, whose other uploads are not the holder's.
async fn came_through_the_link(state: &AppState, caller: &Caller, id: &str) -> TusResult<()> {
    let Some(link) = &caller.link else { return Ok(()) };
    let upload = state.services.uploads.tus_state(&caller.user, id).await.map_err(from_error)?;
    if upload.session.via_link.as_deref() != Some(link.link.as_str()) {
        return Err(from_error(shared::Error::UploadNotFound));
    }
    Ok(())
}

/// Request headers a page on another origin may send (CORS).
const CORS_ALLOW_HEADERS: &str = "Authorization, Content-Type, Tus-Resumable, Upload-Length, Upload-Defer-Length, \
     Upload-Metadata, Upload-Offset, Upload-Checksum, Upload-Concat, Upload-Link, Upload-Link-Password, \
     X-HTTP-Method-Override, X-Requested-With";
/// Answer headers a page on another origin may read (CORS).
const CORS_EXPOSE_HEADERS: &str = "Location, Upload-Offset, Upload-Length, Upload-Defer-Length, Upload-Expires, \
     Upload-Metadata, Upload-Concat, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, \
     Pan-File-Id";

/// `Tus-Resumable` on every answer, `Cache-Control: no-store` (an offset
/// must never come from a cache), and CORS for a page of an origin the
/// operator named (`PAN_TUS_CORS_ORIGINS`: Uppy on a site of theirs): that
/// origin, never `*`, never credentials (they are headers, never cookies,
/// so a page can only use those it was given).
fn with_tus_headers(mut resp: Response, origin: Option<String>) -> Response {
    let headers = resp.headers_mut();
    headers.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) else { return resp };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers
        .insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, HEAD, PATCH, DELETE, OPTIONS"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(CORS_ALLOW_HEADERS));
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(CORS_EXPOSE_HEADERS));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    resp
}

/// `OPTIONS`: what this server speaks; no credentials needed.
fn options(state: &AppState) -> Response {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("tus-version", TUS_VERSION)
        .header("tus-extension", TUS_EXTENSIONS)
        .header("tus-checksum-algorithm", TUS_CHECKSUMS)
        .header("tus-max-size", state.settings.max_file_size.to_string())
        .finish()
}

/// An error answer with `code`, at the status the registry gives it.
fn tus_error(code: ErrorCode, message: impl Into<String>) -> Box<Response> {
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Box::new(Json(ErrorBody::new(code, message)).with_status(status).into_response())
}

/// A use case's error as a tus answer: a checksum mismatch is tus's 460.
fn from_error(e: shared::Error) -> Box<Response> {
    match e.code() {
        ErrorCode::ChunkChecksumMismatch => {
            tus_error(ErrorCode::ChecksumMismatch, format!("{e}: none of the body was kept"))
        }
        // 423 is tus's own status: answered as it is.
        ErrorCode::UploadLocked => tus_error(ErrorCode::UploadLocked, e.to_string()),
        _ => Box::new(ApiError::from(e).into_response()),
    }
}

fn not_allowed(allow: &'static str) -> Box<Response> {
    let mut resp = tus_error(ErrorCode::MethodNotAllowed, "method not allowed on this tus resource");
    resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn bad(message: impl Into<String>) -> Box<Response> {
    tus_error(ErrorCode::InvalidRequest, message)
}

/// The caller: an upload link (`Upload-Link`, with `Upload-Link-Password`
/// when it has one; wrong passwords are rate limited like share links'), or
/// `Authorization: Bearer <token>` (from signin), or `Basic` with the
/// username and one of its app passwords (wrong ones are rate limited per
/// username and address).
async fn authenticate(req: &Request, state: &AppState) -> TusResult<Caller> {
    if let Some(link) = req.header("upload-link").map(str::trim) {
        let password = req.header("upload-link-password").map(str::to_owned);
        let attempt = match password {
            Some(_) => Some(state.rate_limits.share_password(req, link).await.map_err(from_error)?),
            None => None,
        };
        let (user, link) = state.services.shares.open_upload_link(link, password).await.map_err(from_error)?;
        if let Some(attempt) = attempt
            && let Err(e) = attempt.forgive().await
        {
            tracing::warn!(error = %e, "forgiving a right link password failed");
        }
        return Ok(Caller { user, link: Some(link) });
    }
    authenticate_account(req, state).await.map(|user| Caller { user, link: None })
}

/// An account's credentials: a bearer token or `Basic` with an app password.
async fn authenticate_account(req: &Request, state: &AppState) -> TusResult<User> {
    let unauthorized = |message: &str| {
        let mut resp = ApiError::unauthorized(message).into_response();
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"pan\""));
        Box::new(resp)
    };
    let Some((scheme, value)) = req.header("authorization").and_then(|h| h.trim().split_once(' ')) else {
        return Err(unauthorized("send Authorization: Bearer <token>, or Basic with an app password"));
    };
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unauthorized("malformed bearer token"));
        }
        return match state.services.accounts.authenticate(value).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(unauthorized("unknown or expired token; sign in again")),
            Err(e) => Err(from_error(e)),
        };
    }
    if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD.decode(value).ok();
        let pair = decoded.as_deref().and_then(|d| std::str::from_utf8(d).ok()).and_then(|s| s.split_once(':'));
        let Some((username, password)) = pair else {
            return Err(unauthorized("malformed Basic credentials"));
        };
        return match state.services.accounts.authenticate_app_password(username, password).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => {
                state.rate_limits.wrong_app_password(req, username).await.map_err(from_error)?;
                Err(unauthorized("wrong username or app password"))
            }
            Err(e) => Err(from_error(e)),
        };
    }
    Err(unauthorized("send Authorization: Bearer <token>, or Basic with an app password"))
}

/// `/tus/<id>` under `PAN_PUBLIC_URL`, or relative without it (never from `Host`).
fn location(state: &AppState, upload: &TusUpload) -> String {
    let base = state.settings.public_url.as_deref().map_or("", |u| u.trim_end_matches('/'));
    format!("{base}/tus/{}", upload.session.id)
}

/// The headers every answer about an upload carries (to a stranger using
/// an upload link, no file id: they see nothing of the owner's).
fn upload_headers(resp: &mut Response, upload: &TusUpload, caller: &Caller) {
    let headers = resp.headers_mut();
    headers.insert("upload-offset", HeaderValue::from(upload.offset));
    if !upload.finished()
        && let Ok(v) = HeaderValue::from_str(&super::files::http_date(upload.expires_at))
    {
        headers.insert("upload-expires", v);
    }
    if let Some(id) =
        upload.file_id.as_deref().filter(|_| caller.link.is_none()).and_then(|id| HeaderValue::from_str(id).ok())
    {
        headers.insert("pan-file-id", id);
    }
}

/// A header that must be a non-negative integer, when present.
fn number_header(req: &Request, name: &str) -> TusResult<Option<u64>> {
    match req.header(name) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n <= i64::MAX as u64 => Ok(Some(n)),
            _ => Err(bad(format!("{name} must be a non-negative integer"))),
        },
    }
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs (a key may
/// come without a value).
fn parse_metadata(header: Option<&str>) -> TusResult<HashMap<String, Vec<u8>>> {
    use base64::Engine;
    let mut out = HashMap::new();
    let Some(header) = header else { return Ok(out) };
    if header.len() > METADATA_MAX {
        return Err(bad(format!("Upload-Metadata is over {METADATA_MAX} bytes")));
    }
    for pair in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = match pair.split_once(' ') {
            Some((k, v)) => (k, v.trim()),
            None => (pair, ""),
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("Upload-Metadata keys are printable ASCII without spaces or commas"));
        }
        let value = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| bad(format!("Upload-Metadata: the value of {key:?} is not base64")))?;
        if out.insert(key.to_owned(), value).is_some() {
            return Err(bad(format!("Upload-Metadata names {key:?} twice")));
        }
    }
    Ok(out)
}

/// A metadata value that must be UTF-8.
fn text<'a>(meta: &'a HashMap<String, Vec<u8>>, keys: &[&str]) -> TusResult<Option<&'a str>> {
    for key in keys {
        if let Some(v) = meta.get(*key) {
            return std::str::from_utf8(v).map(Some).map_err(|_| bad(format!("Upload-Metadata: {key} is not UTF-8")));
        }
    }
    Ok(None)
}

/// What the creation's metadata asks for.
fn creation(meta: &HashMap<String, Vec<u8>>, length: Option<u64>, partial: bool) -> TusResult<TusCreate> {
    let err = |e: shared::Error| from_error(e);
    let filename = FileName::parse(text(meta, &["filename", "name"])?.unwrap_or(DEFAULT_NAME)).map_err(err)?;
    let folder = text(meta, &["folder"])?.map(str::to_owned);
    let rule = match text(meta, &["on_conflict"])? {
        None | Some("rename") => NameRule::Rename,
        Some("refuse") => NameRule::Refuse,
        Some("replace") => NameRule::Replace,
        Some(other) => return Err(bad(format!("on_conflict is rename, refuse or replace, not {other:?}"))),
    };
    let mtime = match text(meta, &["mtime"])? {
        None => None,
        Some(t) => {
            let secs = t
                .trim()
                .parse::<i64>()
                .map_err(|_| tus_error(ErrorCode::InvalidMtime, "mtime is Unix seconds from 0 to 253402300799"))?;
            Some(Mtime::parse(secs).map_err(err)?)
        }
    };
    Ok(TusCreate { length, filename, folder, within: None, rule, mtime, partial, via_link: None })
}

/// `POST /tus/`: a new upload (with its first bytes, when the body has some).
async fn create(req: &mut Request, state: &AppState, caller: &Caller) -> TusResult<Response> {
    let user = &caller.user;
    let concat = req.header("upload-concat").map(str::trim).map(str::to_owned);
    let meta = parse_metadata(req.header("upload-metadata"))?;
    if caller.link.is_some() && concat.is_some() {
        return Err(bad("an upload link takes whole uploads, not concatenation"));
    }
    if let Some(list) = concat.as_deref().and_then(|c| c.strip_prefix("final;")) {
        // A final upload: the partials' bytes, in the order listed.
        let partials = list.split_whitespace().map(|url| partial_id(state, url)).collect::<TusResult<Vec<_>>>()?;
        let create = creation(&meta, None, false)?;
        let upload = state.services.uploads.tus_concat(user, create, &partials).await.map_err(from_error)?;
        let mut resp = Response::builder().status(StatusCode::CREATED).finish();
        if let Ok(v) = HeaderValue::from_str(&location(state, &upload)) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        upload_headers(&mut resp, &upload, caller);
        return Ok(resp);
    }
    let partial = match concat.as_deref() {
        None => false,
        Some("partial") => true,
        Some(_) => return Err(bad("Upload-Concat is `partial` or `final;<upload URLs>`")),
    };
    let length = number_header(req, "upload-length")?;
    let deferred = match req.header("upload-defer-length").map(str::trim) {
        None => false,
        Some("1") => true,
        Some(_) => return Err(bad("Upload-Defer-Length is 1 when present")),
    };
    if length.is_some() == deferred {
        return Err(bad("send Upload-Length, or Upload-Defer-Length: 1 (one of them)"));
    }
    let mut create = creation(&meta, length, partial)?;
    if let Some(link) = &caller.link {
        // The link's folder, never replacing anything, within its byte limit.
        let Some(length) = length else {
            return Err(bad("an upload link needs Upload-Length (no deferred length)"));
        };
        let folder = Some(&link.folder).filter(|f| !f.is_empty());
        create.within = folder.map(|f| FolderId::parse(f)).transpose().map_err(from_error)?;
        if create.within.is_none() {
            create.folder = None;
        }
        if create.rule == NameRule::Replace {
            create.rule = NameRule::Rename;
        }
        create.via_link = Some(link.link.clone());
        state.services.shares.reserve_upload_link(link, length).await.map_err(from_error)?;
    }
    let content_length = number_header(req, "content-length")?;
    let with_body =
        req.content_type().is_some_and(|t| t.eq_ignore_ascii_case(OFFSET_OCTET_STREAM)) && content_length != Some(0);
    let mut upload = match state.services.uploads.tus_create(user, create).await {
        Ok(upload) => upload,
        Err(e) => {
            give_back(state, caller, length).await;
            return Err(from_error(e));
        }
    };
    if with_body && !upload.finished() {
        // creation-with-upload: the body is the first PATCH. The upload
        // exists whatever becomes of it: the answer says how far it got.
        let patch = patch_request(req, state, 0, content_length)?;
        match receive(req, state, caller, upload.session.id.as_str(), patch).await {
            Ok(now) => upload = now,
            Err(resp) => {
                tracing::info!(status = %resp.status(), "tus creation's body was not taken whole");
                if let Ok(now) = state.services.uploads.tus_state(user, upload.session.id.as_str()).await {
                    upload = now;
                }
            }
        }
    }
    let mut resp = Response::builder().status(StatusCode::CREATED).finish();
    if let Ok(v) = HeaderValue::from_str(&location(state, &upload)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    upload_headers(&mut resp, &upload, caller);
    Ok(resp)
}

/// The upload id a final upload's `Upload-Concat` names: `/tus/<id>`, or
/// that under this server's own URL; any other URL is no upload here (404).
fn partial_id(state: &AppState, url: &str) -> TusResult<String> {
    let path = match url.strip_prefix(&*state.public_base) {
        Some(path) => path,
        None if url.starts_with('/') => url,
        None => return Err(from_error(shared::Error::UploadNotFound)),
    };
    match path.strip_prefix("/tus/") {
        Some(id) if !id.is_empty() && !id.contains('/') => Ok(id.to_owned()),
        _ => Err(from_error(shared::Error::UploadNotFound)),
    }
}

/// `HEAD /tus/<id>`: how far the upload is.
async fn head(state: &AppState, caller: &Caller, id: &str) -> TusResult<Response> {
    use base64::Engine;
    let user = &caller.user;
    let upload = state.services.uploads.tus_state(user, id).await.map_err(from_error)?;
    let mut resp = Response::builder().status(StatusCode::OK).finish();
    upload_headers(&mut resp, &upload, caller);
    let headers = resp.headers_mut();
    match upload.session.size {
        Some(size) => headers.insert("upload-length", HeaderValue::from(size)),
        None => headers.insert("upload-defer-length", HeaderValue::from_static("1")),
    };
    if upload.partial {
        headers.insert("upload-concat", HeaderValue::from_static("partial"));
    }
    // The metadata pan keeps: the name, and the modification time when given.
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
    let mut meta = format!("filename {}", b64(upload.session.filename.as_bytes()));
    if let Some(mtime) = upload.session.mtime {
        meta.push_str(&format!(",mtime {}", b64(mtime.to_string().as_bytes())));
    }
    if let Ok(v) = HeaderValue::from_str(&meta) {
        headers.insert("upload-metadata", v);
    }
    Ok(resp)
}

/// The `PATCH` headers, checked.
fn patch_request(req: &Request, state: &AppState, offset: u64, content_length: Option<u64>) -> TusResult<TusPatch> {
    let checksum = req.header("upload-checksum").map(parse_checksum).transpose()?;
    Ok(TusPatch {
        offset,
        content_length,
        checksum,
        length: number_header(req, "upload-length")?,
        min_rate: state.settings.min_chunk_rate,
    })
}

/// `Upload-Checksum: <sha1|sha256> <base64 digest>`.
fn parse_checksum(header: &str) -> TusResult<BodyChecksum> {
    use base64::Engine;
    let malformed =
        || tus_error(ErrorCode::InvalidChecksumHeader, "Upload-Checksum is `sha1 <base64>` or `sha256 <base64>`");
    let (algo, value) = header.trim().split_once(' ').ok_or_else(malformed)?;
    let digest = base64::engine::general_purpose::STANDARD.decode(value.trim()).map_err(|_| malformed())?;
    if algo.eq_ignore_ascii_case("sha1") {
        digest.try_into().map(BodyChecksum::Sha1).map_err(|_| malformed())
    } else if algo.eq_ignore_ascii_case("sha256") {
        digest.try_into().map(BodyChecksum::Sha256).map_err(|_| malformed())
    } else {
        Err(tus_error(ErrorCode::UnsupportedChecksum, format!("Upload-Checksum algorithms: {TUS_CHECKSUMS}")))
    }
}

/// `PATCH /tus/<id>`: bytes at the upload's offset.
async fn patch(req: &mut Request, state: &AppState, caller: &Caller, id: &str) -> TusResult<Response> {
    if !req.content_type().is_some_and(|t| t.eq_ignore_ascii_case(OFFSET_OCTET_STREAM)) {
        return Err(tus_error(
            ErrorCode::UnsupportedMediaType,
            format!("a PATCH body is Content-Type: {OFFSET_OCTET_STREAM}"),
        ));
    }
    let offset = number_header(req, "upload-offset")?.ok_or_else(|| bad("a PATCH needs Upload-Offset"))?;
    let content_length = number_header(req, "content-length")?;
    let patch = patch_request(req, state, offset, content_length)?;
    let upload = receive(req, state, caller, id, patch).await?;
    let mut resp = Response::builder().status(StatusCode::NO_CONTENT).finish();
    upload_headers(&mut resp, &upload, caller);
    Ok(resp)
}

/// Streams the request's body into the upload, within the caller's and
/// this process's body slots (freed before the answer); a refused body is
/// drained so the client reads the answer rather than a broken pipe.
async fn receive(
    req: &mut Request,
    state: &AppState,
    caller: &Caller,
    id: &str,
    patch: TusPatch,
) -> TusResult<TusUpload> {
    let (user, mut stream) = (&caller.user, req.take_body().into_bytes_stream());
    let owner = match &caller.link {
        Some(link) => SlotOwner::UploadLink(&link.link),
        None => SlotOwner::User(user.id),
    };
    let received = async {
        let slot = state.chunk_slots.try_take(owner).await?;
        let stored = state.services.uploads.tus_patch(user, id, patch, &mut stream).await;
        slot.release().await;
        stored
    };
    match received.await {
        Ok(upload) => Ok(upload),
        Err(e) => {
            if !e.is_slow_body() {
                drain(&mut stream, DRAIN_LIMIT, DRAIN_TIME).await;
            }
            Err(from_error(e))
        }
    }
}

/// `DELETE /tus/<id>`: an unfinished upload is aborted (one made through
/// an upload link gives its bytes back to it); a finished one is forgotten
/// (its file stays).
async fn terminate(state: &AppState, caller: &Caller, id: &str) -> TusResult<Response> {
    state.services.uploads.tus_terminate(&caller.user, id).await.map_err(from_error)?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).finish())
}

/// Gives `bytes` back to the caller's upload link, if it came through one,
/// for an upload refused before its session was made (a failure is
/// logged: the link keeps them counted).
async fn give_back(state: &AppState, caller: &Caller, bytes: Option<u64>) {
    if let (Some(link), Some(bytes)) = (&caller.link, bytes)
        && let Err(e) = state.services.shares.release_upload_link(link, bytes).await
    {
        tracing::warn!(error = %e, "giving bytes back to an upload link failed");
    }
}
