//! The methods that change the tree: PUT (a server-hashed upload that
//! replaces a file only once its new content is whole and verified, the
//! old content kept as a version), MKCOL, DELETE (into the trash, a folder
//! as one item), COPY (a new entry for the same content: no bytes copied)
//! and MOVE; with `Overwrite: T` onto a file, COPY and MOVE replace its
//! content in one transaction, keeping its id, shares and history.

use std::time::Duration;

use futures::Stream;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Request, Response};
use shared::domain::{FileName, FolderId, Mtime, NameRule, Placement, Sha1Hex, UploadState, UserFile};
use shared::upload::{self, InitOutcome, NewUpload, Source};
use shared::{Error, ErrorCode};

use super::{Dav, DavError, DavResult, Node, Target};
use shared::accounts::limits::SlotOwner;

/// Most bytes of a refused PUT body read and dropped so its client sees the error.
const DRAIN_LIMIT: u64 = 128 << 20;
/// Longest time spent reading a refused body.
const DRAIN_TIME: Duration = Duration::from_secs(15);
/// The SHA-1 of no bytes.
const EMPTY_SHA1: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
/// Longest a PUT waits for its upload's merge before answering 503.
const MERGE_WAIT: Duration = Duration::from_secs(600);
/// A PUT of at most this many bytes (with a Content-Length) is spooled and
/// committed in one step, as `/file/upload` does, rather than through an
/// upload session and a merge: most of a small file's time was the
/// session's bookkeeping (rclone's 10,000 small files went 3× faster).
const SMALL_PUT: u64 = 4 << 20;

/// `X-OC-Mtime`: Unix seconds, whole or fractional (the fraction dropped).
pub(super) fn oc_mtime(req: &Request) -> DavResult<Option<Mtime>> {
    let Some(v) = req.header("x-oc-mtime") else { return Ok(None) };
    let secs: f64 = v.trim().parse().map_err(|_| DavError::bad("X-OC-Mtime is Unix seconds"))?;
    if !secs.is_finite() {
        return Err(DavError::bad("X-OC-Mtime is Unix seconds"));
    }
    Ok(Some(Mtime::parse(secs.floor() as i64)?))
}

/// The SHA-1 of `OC-Checksum` (`SHA1:<hex>`, among others separated by
/// spaces); `None` when it names no SHA-1. A malformed SHA-1 is 400.
pub(super) fn oc_checksum(req: &Request) -> DavResult<Option<[u8; 20]>> {
    let Some(v) = req.header("oc-checksum") else { return Ok(None) };
    for token in v.split_whitespace() {
        if let Some((algo, hex)) = token.split_once(':')
            && algo.eq_ignore_ascii_case("sha1")
        {
            let mut out = [0u8; 20];
            hex::decode_to_slice(hex, &mut out).map_err(|_| DavError::bad("OC-Checksum's SHA1 is 40 hex digits"))?;
            return Ok(Some(out));
        }
    }
    Ok(None)
}

/// The headers every answer about a file carries.
pub(super) fn file_headers(resp: &mut Response, f: &UserFile) {
    let etag = format!("\"{}\"", f.sha256.as_deref().unwrap_or(&f.filehash));
    for (name, value) in [("ETag", etag.as_str()), ("OC-ETag", etag.as_str()), ("OC-FileId", f.id.as_str())] {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().insert(name, v);
        }
    }
}

/// An empty answer with `status`.
fn empty(status: StatusCode) -> Response {
    Response::builder().status(status).header(header::CONTENT_LENGTH, "0").finish()
}

/// `PUT`: the body streamed into a server-hashed upload, merged, and only
/// then the file at the path (made, or replaced keeping a version). 201 for
/// a new file, 204 for a replaced one. `OC-Checksum: SHA1:<hex>` is checked
/// against the whole body before any of it counts (400, nothing changed);
/// `X-OC-Mtime` becomes the file's modification time.
pub async fn put(dav: &Dav, req: &Request, target: &Target, body: Body) -> DavResult {
    let mut stream = body.into_bytes_stream();
    let answer = put_into(dav, req, target, &mut stream).await;
    if let Err((e, read)) = &answer
        && !read
        && e.status != StatusCode::REQUEST_TIMEOUT
    {
        crate::routes::mupload::drain(&mut stream, DRAIN_LIMIT, DRAIN_TIME).await;
    }
    answer.map_err(|(e, _)| e)
}

/// [`put`]'s work; an error says whether the body was read (to its end,
/// or cut off for being slow), else the caller drains it.
async fn put_into<S>(dav: &Dav, req: &Request, target: &Target, stream: &mut S) -> Result<Response, (DavError, bool)>
where
    S: Stream<Item = std::io::Result<bytes::Bytes>> + Send + Unpin,
{
    let unread = |e: DavError| (e, false);
    let Some((name, parent)) = target.split_last() else {
        return Err(unread(DavError::not_allowed("the root is a collection")));
    };
    let filename = FileName::parse(name).map_err(|e| unread(e.into()))?;
    let mtime = oc_mtime(req).map_err(unread)?;
    let checksum = oc_checksum(req).map_err(unread)?;
    let content_length = match req.header(header::CONTENT_LENGTH) {
        Some(v) => Some(v.trim().parse::<u64>().map_err(|_| unread(DavError::bad("malformed Content-Length")))?),
        None => None,
    };
    if req.header(header::CONTENT_RANGE).is_some() {
        return Err(unread(DavError::bad("a PUT with Content-Range is not supported (RFC 9110 §9.3.4)")));
    }
    let folder = dav.parent_folder(parent).await.map_err(unread)?;
    super::locks::check_write(dav, req, target, false).await.map_err(unread)?;
    let replaced = match dav.resolve(target).await.map_err(unread)? {
        Some(Node::File(_)) => true,
        Some(_) => return Err(unread(DavError::not_allowed("a collection is here; PUT writes files"))),
        None => false,
    };
    let place = Placement {
        folder: if folder.is_empty() { None } else { Some(FolderId::parse(&folder).map_err(|e| unread(e.into()))?) },
        rule: NameRule::Replace,
        if_match: None,
    };
    let services = &dav.state.services;
    if let Some(size) = content_length.filter(|&n| n <= SMALL_PUT.min(services.files.max_single_upload())) {
        let expect = checksum.map(|h| Sha1Hex::parse(&hex::encode(h))).transpose().map_err(|e| unread(e.into()))?;
        let file = put_small(dav, (&filename, &place, mtime), (size, expect.as_ref()), stream).await?;
        let mut resp = empty(if replaced { StatusCode::NO_CONTENT } else { StatusCode::CREATED });
        file_headers(&mut resp, &file);
        if mtime.is_some() {
            resp.headers_mut().insert("X-OC-Mtime", HeaderValue::from_static("accepted"));
        }
        return Ok(resp);
    }
    let new = NewUpload { filename, filesize: content_length, mtime, source: Source::Server, via_link: None };
    let session = match services.uploads.init(&dav.user, new, &place).await.map_err(|e| unread(e.into()))? {
        InitOutcome::New(session, _) => session,
        other => {
            let e = Error::internal("a WebDAV PUT", format!("a server-hashed init answered {other:?}"));
            return Err(unread(e.into()));
        }
    };
    let id = session.id.to_string();
    let abort = || async {
        if let Err(e) = services.uploads.abort(&dav.user, &id).await {
            tracing::warn!(upload = %id, error = %e, "dropping a WebDAV PUT's upload failed");
        }
    };
    let received = if content_length == Some(0) {
        if checksum.is_some_and(|want| hex::encode(want) != EMPTY_SHA1) {
            abort().await;
            return Err(unread(
                Error::invalid(ErrorCode::ChunkChecksumMismatch, "OC-Checksum does not match the body").into(),
            ));
        }
        Ok(0)
    } else {
        match dav.state.chunk_slots.try_take(SlotOwner::User(dav.user.id)).await {
            Err(e) => Err((e, false)),
            Ok(slot) => {
                let request = upload::BytesRequest {
                    offset: 0,
                    content_length,
                    checksum: checksum.map(upload::BodyChecksum::Sha1),
                    min_rate: dav.state.settings.min_chunk_rate,
                };
                let sent = services.uploads.put_bytes(&dav.user, &id, request, stream).await;
                slot.release().await;
                sent.map(|(_, counted)| counted).map_err(|e| {
                    let read = e.is_slow_body();
                    (e, read)
                })
            }
        }
    };
    let size = match received {
        Ok(n) => n,
        Err((e, read)) => {
            abort().await;
            return Err((e.into(), read));
        }
    };
    let read = |e: DavError| (e, true);
    if let Err(e) = services.uploads.complete(&dav.user, &id, Some(size)).await {
        abort().await;
        return Err(read(e.into()));
    }
    let file = wait_merged(dav, &id).await.map_err(read)?;
    let mut resp = empty(if replaced { StatusCode::NO_CONTENT } else { StatusCode::CREATED });
    file_headers(&mut resp, &file);
    if mtime.is_some() {
        resp.headers_mut().insert("X-OC-Mtime", HeaderValue::from_static("accepted"));
    }
    Ok(resp)
}

/// A small PUT's body spooled, hashed (checked against `expect` when
/// given) and committed in one step, within one of the caller's body slots
/// and a deadline a client at the rate floor would meet.
async fn put_small<S>(
    dav: &Dav,
    (filename, place, mtime): (&FileName, &Placement, Option<Mtime>),
    (size, expect): (u64, Option<&Sha1Hex>),
    stream: &mut S,
) -> Result<UserFile, (DavError, bool)>
where
    S: Stream<Item = std::io::Result<bytes::Bytes>> + Send + Unpin,
{
    let slot = dav.state.chunk_slots.try_take(SlotOwner::User(dav.user.id)).await.map_err(|e| (e.into(), false))?;
    let deadline = Duration::from_secs(60 + size / dav.state.settings.min_chunk_rate.max(1));
    let body = tokio_util::io::StreamReader::new(stream);
    let files = &dav.state.services.files;
    let stored =
        tokio::time::timeout(deadline, files.upload_single(&dav.user, filename, place, mtime, (size, expect), body))
            .await;
    slot.release().await;
    match stored {
        Ok(Ok(file)) => Ok(file),
        // Whatever of the body is left is drained by the caller.
        Ok(Err(e)) => Err((e.into(), false)),
        Err(_) => Err((
            DavError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {} s", deadline.as_secs()),
            ),
            true,
        )),
    }
}

/// Waits for upload `id`'s merge: its file once done. A failed merge drops
/// the upload and is a 503 (retry the PUT) or, when the bytes were wrong,
/// a 400.
async fn wait_merged(dav: &Dav, id: &str) -> DavResult<UserFile> {
    let services = &dav.state.services;
    let deadline = tokio::time::Instant::now() + MERGE_WAIT;
    let mut pause = Duration::from_millis(10);
    loop {
        let (session, _, file) = services.uploads.status(&dav.user, id).await?;
        match session.state {
            UploadState::Done => {
                return file.ok_or_else(|| DavError::conflict("the file was deleted as soon as it was stored"));
            }
            UploadState::Failed => {
                if let Err(e) = services.uploads.abort(&dav.user, id).await {
                    tracing::warn!(upload = %id, error = %e, "dropping a failed WebDAV PUT's upload failed");
                }
                let reason = session.reason.unwrap_or_default();
                let retryable = session.reason_code.is_some_and(|c| c.retryable());
                let mut e = DavError::new(
                    if retryable { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::BAD_REQUEST },
                    format!("storing the file failed: {reason}"),
                );
                if retryable {
                    e.retry_after = Some(5);
                }
                return Err(e);
            }
            UploadState::Uploading | UploadState::Merging => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let mut e = DavError::new(StatusCode::SERVICE_UNAVAILABLE, "the file is still being stored; retry later");
            e.retry_after = Some(30);
            return Err(e);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// `MKCOL`: a new folder. 405 when something is there already, 409 when
/// the parent is missing, 415 with a body (RFC 4918 §9.3).
pub async fn mkcol(dav: &Dav, req: &Request, target: &Target, body: Body) -> DavResult {
    let body = super::propfind::read_body(body).await?;
    if !body.is_empty() {
        return Err(DavError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "MKCOL takes no body"));
    }
    let Some((name, parent)) = target.split_last() else {
        return Err(DavError::not_allowed("the root exists"));
    };
    if dav.resolve(target).await?.is_some() {
        return Err(DavError::not_allowed("something is at this path already"));
    }
    let folder = dav.parent_folder(parent).await?;
    super::locks::check_write(dav, req, target, false).await?;
    let name = FileName::parse(name)?;
    match dav.state.services.tree.create_folder(&dav.user, &folder, &name, NameRule::Refuse).await {
        Ok(_) => Ok(empty(StatusCode::CREATED)),
        Err(Error::NameTaken { .. }) => Err(DavError::not_allowed("something is at this path already")),
        Err(Error::FolderNotFound) => Err(DavError::conflict("the parent collection does not exist")),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE`: into the trash; a folder goes as one item with everything in
/// it. The root cannot be deleted (403).
pub async fn delete(dav: &Dav, req: &Request, target: &Target) -> DavResult {
    if target.names.is_empty() {
        return Err(DavError::forbidden("the root cannot be deleted"));
    }
    let id = match dav.resolve(target).await? {
        Some(Node::File(f)) => f.id,
        Some(Node::Folder(d)) => {
            if req.header("depth").is_some_and(|d| !d.trim().eq_ignore_ascii_case("infinity")) {
                return Err(DavError::bad("DELETE of a collection is Depth infinity (RFC 4918 §9.6.1)"));
            }
            d.id
        }
        Some(Node::Root) => return Err(DavError::forbidden("the root cannot be deleted")),
        None => return Err(DavError::not_found()),
    };
    super::locks::check_write(dav, req, target, true).await?;
    match dav.state.services.tree.delete(&dav.user, &id, false).await {
        Ok(()) => {
            dav.state.services.locks.drop_under(&dav.user, &target.tree_path()).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        Err(Error::FileNotFound | Error::FolderNotFound) => Err(DavError::not_found()),
        Err(e) => Err(e.into()),
    }
}

/// The path of a `Destination` header: an absolute URL's path, or a path.
pub(super) fn destination_path(value: &str) -> DavResult<String> {
    let value = value.trim();
    if value.starts_with('/') {
        return Ok(value.split(['?', '#']).next().unwrap_or("").to_owned());
    }
    let url = url::Url::parse(value).map_err(|_| DavError::bad("Destination is not a URL"))?;
    Ok(url.path().to_owned())
}

/// `COPY` and `MOVE`. The destination must be the caller's own path (403
/// otherwise), its parent a collection (409); something there is replaced
/// only with `Overwrite: T` (the default; 412 with `F`): a file onto a
/// file in one transaction (the file keeps its id, shares and history, the
/// old content a version), anything else by putting what is there into the
/// trash in the same transaction that puts the source in its place (a
/// folder's copy is built aside first). 201 when nothing was there, 204
/// when something was.
pub async fn copy_or_move(dav: &Dav, req: &Request, target: &Target, is_move: bool) -> DavResult {
    let destination = req.header("destination").ok_or_else(|| DavError::bad("Destination is required"))?;
    let dest = super::Target::parse(&destination_path(destination)?)?
        .ok_or_else(|| DavError::new(StatusCode::BAD_GATEWAY, "Destination is not in this WebDAV tree"))?;
    if dest.user.as_deref().is_some_and(|u| u != dav.user.username) {
        return Err(DavError::forbidden("Destination is another user's path"));
    }
    oc_mtime(req)?;
    let overwrite = match req.header("overwrite").map(str::trim) {
        None | Some("T" | "t") => true,
        Some("F" | "f") => false,
        Some(_) => return Err(DavError::bad("Overwrite is T or F")),
    };
    if target.names.is_empty() {
        return Err(DavError::forbidden("the root cannot be copied or moved"));
    }
    let Some((dest_name, dest_parent)) = dest.split_last() else {
        return Err(DavError::forbidden("the root cannot be replaced"));
    };
    let source = dav.resolve(target).await?.ok_or_else(DavError::not_found)?;
    let shallow = match req.header("depth").map(str::trim) {
        None => false,
        Some(d) if d.eq_ignore_ascii_case("infinity") => false,
        Some("0") if !is_move => true,
        Some(_) => return Err(DavError::bad("Depth is infinity (or 0 for a COPY)")),
    };
    let (source_keys, dest_keys) = (target.keys(), dest.keys());
    if dest_keys == source_keys {
        return Err(DavError::forbidden("the source and the destination are the same"));
    }
    let is_folder = matches!(source, Node::Folder(_));
    if is_folder && dest_keys.starts_with(&source_keys) {
        return Err(DavError::conflict("a collection cannot go into itself"));
    }
    if source_keys.starts_with(&dest_keys) {
        return Err(DavError::conflict("the destination holds the source"));
    }
    let to = dav.parent_folder(dest_parent).await?;
    let name = FileName::parse(dest_name)?;
    if is_move {
        super::locks::check_write(dav, req, target, true).await?;
    }
    super::locks::check_write(dav, req, &dest, true).await?;
    let existing = dav.resolve(&dest).await?;
    if existing.is_some() && !overwrite {
        return Err(DavError::new(StatusCode::PRECONDITION_FAILED, "the destination exists and Overwrite is F"));
    }
    let tree = &dav.state.services.tree;
    let files = &dav.state.services.files;
    let (user, to) = (&dav.user, Some(to.as_str()));
    let replaced = existing.is_some();
    let rule = match (&source, existing) {
        (Node::File(f), Some(Node::File(there))) if f.id == there.id => {
            return Err(DavError::forbidden("the source and the destination are the same"));
        }
        (Node::File(_), Some(Node::File(_))) => NameRule::Replace,
        (_, Some(Node::Root)) => return Err(DavError::forbidden("the root cannot be replaced")),
        // What is there goes to the trash in the move's own transaction.
        (_, Some(_)) => NameRule::Supersede,
        (_, None) => NameRule::Refuse,
    };
    let moved = match (&source, is_move) {
        (Node::File(f), true) => tree.move_file(user, &f.id, to, Some(&name), (rule, None)).await.map(Some),
        (Node::File(f), false) => files.copy(user, &f.id, to, Some(&name), (rule, None)).await.map(Some),
        (Node::Folder(d), true) => tree.move_folder(user, &d.id, to, Some(&name), rule).await.map(|_| None),
        (Node::Folder(d), false) => {
            files.copy_folder(user, &d.id, to.unwrap_or(""), &name, (shallow, rule)).await.map(|_| None)
        }
        (Node::Root, _) => return Err(DavError::forbidden("the root cannot be copied or moved")),
    };
    let file = match moved {
        Ok(f) => f,
        Err(Error::NameTaken { .. }) => {
            return Err(DavError::new(StatusCode::PRECONDITION_FAILED, "the destination was taken meanwhile"));
        }
        Err(Error::MoveIntoItself) => return Err(DavError::conflict("a collection cannot go into itself")),
        Err(e) => return Err(e.into()),
    };
    if is_move {
        dav.state.services.locks.drop_under(user, &target.tree_path()).await?;
    }
    let mtime = oc_mtime(req)?;
    let mut resp = empty(if replaced { StatusCode::NO_CONTENT } else { StatusCode::CREATED });
    if let Some(f) = &file {
        if let Some(t) = mtime {
            dav.state.services.tree.set_mtime(user, &f.id, t).await?;
            resp.headers_mut().insert("X-OC-Mtime", HeaderValue::from_static("accepted"));
        }
        file_headers(&mut resp, f);
    }
    Ok(resp)
}
