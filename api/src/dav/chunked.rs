//! rclone's chunked upload (Nextcloud's "v1" chunking as rclone sends it)
//! under `/remote.php/dav/uploads/<username>/<dir>/`: `DELETE <dir>/`
//! (404 when absent), `MKCOL <dir>/`, `PUT <dir>/<start>-<end>` (15-digit
//! offsets, `end` inclusive, `end − start + 1` the Content-Length), then
//! `MOVE <dir>/.file` with `Destination`, `X-OC-Mtime` and `OC-Checksum`.
//!
//! A directory is one server-hashed upload of unknown size whose id is
//! derived from (user, directory) ([`shared::upload::Uploads::keyed_id`]),
//! so two users may pick the same name, every api process finds it, it
//! counts against `PAN_MAX_OPEN_UPLOADS` and its bytes against the quota
//! as they arrive. The MOVE names the file's place and the SHA-1 of
//! `OC-Checksum` (the merge checks it: a mismatch is 400 and stores
//! nothing), completes the upload and waits for its merge: 201/204 once the file is committed; past 30 s
//! 423 with Retry-After, and a later MOVE of the same directory answers the
//! outcome. A failed upload keeps its directory (and its error) until it
//! expires, so a retry never reads 404.

use std::time::Duration;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Request, Response};
use shared::Error;
use shared::domain::{FileName, FolderId, NameRule, Placement, Sha1Hex, UploadState};
use shared::upload::{self, NewUpload, Source, Uploads};

use super::{Dav, DavError, DavResult, Node};
use shared::accounts::limits::SlotOwner;

/// Where chunk directories are.
pub const UPLOADS: &str = "/remote.php/dav/uploads/";
/// How long a final MOVE waits for the merge before answering 423.
const MOVE_WAIT: Duration = Duration::from_secs(30);

/// A path under [`UPLOADS`]: the user, the directory, and maybe a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPath {
    /// The username in the path.
    pub user: String,
    /// The directory's name.
    pub dir: String,
    /// The member (`<start>-<end>` or `.file`), if any.
    pub member: Option<String>,
}

impl UploadPath {
    /// Parses a request path under [`UPLOADS`]; `Ok(None)` elsewhere.
    pub fn parse(path: &str) -> DavResult<Option<UploadPath>> {
        let Some(rest) = path.strip_prefix(UPLOADS) else { return Ok(None) };
        let parts = rest.split('/').filter(|s| !s.is_empty()).map(super::decode).collect::<DavResult<Vec<_>>>()?;
        match parts.as_slice() {
            [user, dir] => Ok(Some(UploadPath { user: user.clone(), dir: dir.clone(), member: None })),
            [user, dir, member] => {
                Ok(Some(UploadPath { user: user.clone(), dir: dir.clone(), member: Some(member.clone()) }))
            }
            _ => Err(DavError::not_found()),
        }
    }
}

/// A chunk's name: `<start>-<end>`, 15 digits each, `end` inclusive.
fn chunk_range(member: &str) -> Option<(u64, u64)> {
    let (a, b) = member.split_once('-')?;
    if a.len() != 15 || b.len() != 15 || !a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (start, end) = (a.parse().ok()?, b.parse().ok()?);
    (end >= start).then_some((start, end))
}

/// Answers a request under [`UPLOADS`] for the authenticated caller.
pub async fn handle(dav: &Dav, req: &Request, at: &UploadPath, body: Body) -> DavResult {
    if at.dir.len() > 255 {
        return Err(DavError::bad("an upload directory's name is at most 255 bytes"));
    }
    let id = Uploads::keyed_id(&dav.user, &at.dir);
    let uploads = &dav.state.services.uploads;
    let method = req.method().as_str();
    match (method, at.member.as_deref()) {
        ("MKCOL", None) => {
            let new = NewUpload {
                filename: FileName::parse("upload").map_err(DavError::from)?,
                filesize: None,
                mtime: None,
                source: Source::Server,
                via_link: None,
            };
            match uploads.init_keyed(&dav.user, new, &Placement::default(), &at.dir).await {
                Ok(_) => Ok(empty(StatusCode::CREATED)),
                Err(Error::NameTaken { .. }) => Err(DavError::not_allowed("this upload directory exists")),
                Err(e) => Err(e.into()),
            }
        }
        ("DELETE", None) => match uploads.abort(&dav.user, &id).await {
            Ok(_) => Ok(empty(StatusCode::NO_CONTENT)),
            Err(Error::UploadNotFound) => Err(DavError::not_found()),
            Err(Error::NotUploading { .. }) => Err(locked("the upload is being stored; retry later")),
            Err(e) => Err(e.into()),
        },
        ("PUT", Some(member)) => put_chunk(dav, req, &id, member, body).await,
        ("MOVE", Some(".file")) => finish(dav, req, &id).await,
        ("PROPFIND", _) => match uploads.status(&dav.user, &id).await {
            Ok(_) => Err(DavError::not_allowed("upload directories are not listed")),
            Err(e) => Err(e.into()),
        },
        _ => Err(DavError::not_allowed(format!("{method} is not part of the chunked upload"))),
    }
}

fn empty(status: StatusCode) -> Response {
    Response::builder().status(status).header(header::CONTENT_LENGTH, "0").finish()
}

fn locked(message: &str) -> DavError {
    let mut e = DavError::new(StatusCode::LOCKED, message);
    e.retry_after = Some(5);
    e
}

/// `PUT <dir>/<start>-<end>`: the bytes at their offset.
async fn put_chunk(dav: &Dav, req: &Request, id: &str, member: &str, body: Body) -> DavResult {
    let mut stream = body.into_bytes_stream();
    let answer = async {
        let (start, end) =
            chunk_range(member).ok_or_else(|| DavError::bad("a chunk is named <start>-<end>, 15 digits each"))?;
        let len: u64 = req
            .header(header::CONTENT_LENGTH)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| DavError::bad("a chunk has a Content-Length"))?;
        if end - start + 1 != len {
            return Err(DavError::bad("a chunk's Content-Length is end - start + 1"));
        }
        let slot = dav.state.chunk_slots.try_take(SlotOwner::User(dav.user.id)).await?;
        let request = upload::BytesRequest {
            offset: start,
            content_length: Some(len),
            checksum: None,
            min_rate: dav.state.settings.min_chunk_rate,
        };
        let sent = dav.state.services.uploads.put_bytes(&dav.user, id, request, &mut stream).await;
        slot.release().await;
        sent?;
        Ok(empty(StatusCode::CREATED))
    };
    match answer.await {
        Ok(r) => Ok(r),
        Err(e) => {
            if e.status != StatusCode::REQUEST_TIMEOUT {
                crate::routes::mupload::drain(&mut stream, 128 << 20, Duration::from_secs(15)).await;
            }
            Err(e)
        }
    }
}

/// `MOVE <dir>/.file`: names the file's place, completes the upload and
/// waits (30 s at most) for the file.
async fn finish(dav: &Dav, req: &Request, id: &str) -> DavResult {
    let uploads = &dav.state.services.uploads;
    let destination = req.header("destination").ok_or_else(|| DavError::bad("Destination is required"))?;
    let dest = super::Target::parse(&super::write::destination_path(destination)?)?
        .ok_or_else(|| DavError::new(StatusCode::BAD_GATEWAY, "Destination is not in the files tree"))?;
    if dest.user.as_deref().is_some_and(|u| u != dav.user.username) {
        return Err(DavError::forbidden("Destination is another user's path"));
    }
    let (session, _, _) = uploads.status(&dav.user, id).await?;
    let replaced = matches!(dav.resolve(&dest).await?, Some(Node::File(_)));
    if session.state == UploadState::Uploading {
        let Some((name, parent)) = dest.split_last() else {
            return Err(DavError::forbidden("the root cannot be replaced"));
        };
        let folder = dav.parent_folder(parent).await?;
        if matches!(dav.resolve(&dest).await?, Some(Node::Folder(_) | Node::Root)) {
            return Err(DavError::conflict("a collection is at the destination"));
        }
        super::locks::check_write(dav, req, &dest, false).await?;
        let name = FileName::parse(name)?;
        let place = Placement {
            folder: if folder.is_empty() { None } else { Some(FolderId::parse(&folder)?) },
            rule: NameRule::Replace,
            if_match: None,
        };
        let mtime = super::write::oc_mtime(req)?;
        if let Some(total) = req.header("oc-total-length") {
            let total: u64 = total.trim().parse().map_err(|_| DavError::bad("OC-Total-Length is a number"))?;
            if total != session.received {
                return Err(DavError::bad(format!("OC-Total-Length says {total} bytes, {} arrived", session.received)));
            }
        }
        let filehash = super::write::oc_checksum(req)?.map(|h| Sha1Hex::parse(&hex::encode(h))).transpose()?;
        uploads.retarget(&dav.user, id, (&name, &place), mtime, filehash.as_ref()).await?;
        match uploads.complete(&dav.user, id, Some(session.received)).await {
            Ok(_) => {}
            Err(e @ Error::ChunksMissing { .. }) => {
                return Err(DavError::bad(format!("the chunks leave gaps: {e}")));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let deadline = tokio::time::Instant::now() + MOVE_WAIT;
    let mut pause = Duration::from_millis(10);
    loop {
        let (session, _, file) = uploads.status(&dav.user, id).await?;
        match session.state {
            UploadState::Done => {
                let file = file.ok_or_else(|| DavError::conflict("the file was deleted as soon as it was stored"))?;
                let mut resp = empty(if replaced { StatusCode::NO_CONTENT } else { StatusCode::CREATED });
                super::write::file_headers(&mut resp, &file);
                if req.header("x-oc-mtime").is_some() {
                    resp.headers_mut().insert("X-OC-Mtime", HeaderValue::from_static("accepted"));
                }
                return Ok(resp);
            }
            UploadState::Failed => {
                let reason = session.reason.unwrap_or_default();
                let retryable = session.reason_code.is_some_and(|c| c.retryable());
                let code = if retryable { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::BAD_REQUEST };
                let mut e = DavError::new(code, format!("storing the file failed: {reason}"));
                if retryable {
                    e.retry_after = Some(5);
                }
                return Err(e);
            }
            UploadState::Uploading | UploadState::Merging => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(locked("the file is still being stored; MOVE again to learn the outcome"));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_names_are_two_inclusive_15_digit_offsets() {
        assert_eq!(chunk_range("000000000000000-000000000000009"), Some((0, 9)));
        for bad in ["0-9", "000000000000009-000000000000000", "00000000000000a-000000000000009", ".file"] {
            assert_eq!(chunk_range(bad), None, "{bad}");
        }
        let p = UploadPath::parse("/remote.php/dav/uploads/al/rclone-chunked-x/000000000000000-000000000000009");
        assert_eq!(p.unwrap().unwrap().member.as_deref(), Some("000000000000000-000000000000009"));
        assert!(UploadPath::parse("/remote.php/dav/files/al/x").unwrap().is_none());
    }
}
