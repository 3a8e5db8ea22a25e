//! Resumable, verified downloads.
//!
//! The bytes land in `<out>.part`; a later run (or a retry after a dropped
//! connection) asks for the rest with `Range: bytes=<len>-`. At the end the
//! whole file's digest is checked against the server's `ETag` (the
//! SHA-256, or the SHA-1 for files stored before SHA-256 was kept) and the
//! `.part` file is renamed to `<out>`. A `.part` file that does not match is
//! removed, so the next run starts over. A failed write (a full disk) keeps
//! the `.part` file for the next run.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use progenitor_client::{ByteStream, ResponseValue};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use sha1::Digest;
use tokio::io::AsyncWriteExt;

use crate::http::{ApiError, Session};

/// What the server says about a file before its bytes.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The entry id.
    pub id: String,
    /// Its name (from `Content-Disposition`).
    pub name: Option<String>,
    /// Its size.
    pub size: u64,
    /// Its SHA-256 (64 hex) or SHA-1 (40 hex), from the `ETag`.
    pub digest: String,
    /// Its modification time, from `Last-Modified`: the downloaded file gets it.
    pub modified: Option<std::time::SystemTime>,
}

/// Why a download did not finish.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The server refused, or could not be reached after every retry.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Writing the local file failed; what was written is kept.
    #[error("cannot write {path}: {source} ({kept} bytes kept: run the same pan get again to resume)")]
    Write {
        /// The `.part` file.
        path: PathBuf,
        /// Bytes it holds.
        kept: u64,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// Reading the local `.part` or renaming it failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The bytes do not have the server's digest (the `.part` file is removed).
    #[error(
        "the downloaded bytes do not match the server's digest {expected}: the partial file was removed, run pan get again"
    )]
    Mismatch {
        /// The server's digest.
        expected: String,
    },
}

/// Asks for the first byte of file `id`: its name, size and digest.
pub async fn probe(session: &Session, id: &str) -> Result<Remote, ApiError> {
    let resp = session.send(|| session.api().file_download().id(id).range("bytes=0-0").send()).await;
    let resp = match resp {
        Ok(r) => r,
        // 416: an empty file has no first byte; its size is 0.
        Err(ApiError::Refused { status: StatusCode::RANGE_NOT_SATISFIABLE, .. }) => {
            let r = session.send(|| session.api().file_download().id(id).send()).await?;
            return remote_from(id, r.headers(), 0);
        }
        Err(e) => return Err(e),
    };
    let size = total_size(resp.headers()).ok_or_else(|| ApiError::Protocol("a download without its size".into()))?;
    remote_from(id, resp.headers(), size)
}

fn remote_from(id: &str, h: &HeaderMap, size: u64) -> Result<Remote, ApiError> {
    let digest = h
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start_matches("W/").trim_matches('"').to_ascii_lowercase())
        .ok_or_else(|| ApiError::Protocol("a download without its ETag".into()))?;
    let name = h.get(reqwest::header::CONTENT_DISPOSITION).and_then(|v| v.to_str().ok()).and_then(disposition_name);
    let modified = h
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map(std::time::SystemTime::from);
    Ok(Remote { id: id.to_owned(), name, size, digest, modified })
}

/// The whole size from `Content-Range: bytes a-b/N` or `Content-Length`.
fn total_size(h: &HeaderMap) -> Option<u64> {
    if let Some(range) = h.get(reqwest::header::CONTENT_RANGE).and_then(|v| v.to_str().ok()) {
        return range.rsplit('/').next()?.parse().ok();
    }
    h.get(reqwest::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The name in `attachment; filename="x"; filename*=UTF-8''x%20y`, preferring
/// the UTF-8 form.
pub fn disposition_name(value: &str) -> Option<String> {
    let mut plain = None;
    for part in value.split(';').map(str::trim) {
        if let Some(enc) = part.strip_prefix("filename*=UTF-8''") {
            let bytes = enc.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' {
                    let b = u8::from_str_radix(enc.get(i + 1..i + 3)?, 16).ok()?;
                    out.push(b);
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            return String::from_utf8(out).ok();
        }
        if let Some(p) = part.strip_prefix("filename=") {
            plain = Some(p.trim_matches('"').to_owned());
        }
    }
    plain
}

/// The `.part` file beside `out`.
pub fn part_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    out.with_file_name(name)
}

/// Downloads `remote` into `out` through `<out>.part`, resuming what an
/// earlier run left there; `progress` gets the bytes on disk so far.
pub async fn download(
    session: &Session,
    remote: &Remote,
    out: &Path,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, DownloadError> {
    let part = part_path(out);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DownloadError::Io { path, source }
    };
    // What an earlier run kept, hashed again (the bytes on disk are the truth).
    let mut hasher = Hasher::new(remote.digest.len());
    let mut have = 0;
    if let Ok(mut f) = tokio::fs::File::open(&part).await {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0; 1 << 20];
        loop {
            let n = f.read(&mut buf).await.map_err(io(&part))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            have += n as u64;
        }
    }
    if have > remote.size {
        tokio::fs::remove_file(&part).await.map_err(io(&part))?;
        (hasher, have) = (Hasher::new(remote.digest.len()), 0);
    }
    progress(have);
    let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(&part).await.map_err(io(&part))?;
    let mut attempt = 0;
    while have < remote.size {
        let range = format!("bytes={have}-");
        let resp: ResponseValue<ByteStream> =
            session.send(|| session.api().file_download().id(remote.id.as_str()).range(&range).send()).await?;
        if resp.status() == StatusCode::OK && have > 0 {
            // The server sent it all: start over.
            file.set_len(0).await.map_err(io(&part))?;
            (hasher, have) = (Hasher::new(remote.digest.len()), 0);
        }
        let mut body = resp.into_inner_stream();
        let mut failed = None;
        while let Some(piece) = body.next().await {
            match piece {
                Ok(bytes) => {
                    if let Err(source) = file.write_all(&bytes).await {
                        let _ = file.flush().await;
                        let kept = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(have);
                        return Err(DownloadError::Write { path: part, kept, source });
                    }
                    hasher.update(&bytes);
                    have += bytes.len() as u64;
                    progress(have);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Err(source) = file.flush().await {
            return Err(DownloadError::Write { path: part, kept: have, source });
        }
        if let Some(e) = failed {
            attempt += 1;
            if attempt > session.retry.retries {
                return Err(ApiError::Network { base: session.base.clone(), source: e }.into());
            }
            tokio::time::sleep(session.retry.backoff(attempt)).await;
        }
    }
    if let Some(t) = remote.modified {
        // The file's own modification time, as the server keeps it.
        let std_file = file.try_clone().await.map_err(io(&part))?.into_std().await;
        if let Err(source) = std_file.set_modified(t) {
            return Err(DownloadError::Write { path: part, kept: have, source });
        }
    }
    if let Err(source) = file.sync_all().await {
        return Err(DownloadError::Write { path: part, kept: have, source });
    }
    drop(file);
    let got = hasher.finish();
    if got != remote.digest {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(DownloadError::Mismatch { expected: remote.digest.clone() });
    }
    tokio::fs::rename(&part, out).await.map_err(io(out))?;
    Ok(have)
}

/// SHA-256, or SHA-1 for a 40-character digest.
enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(digest_len: usize) -> Hasher {
        if digest_len == 40 { Hasher::Sha1(sha1::Sha1::new()) } else { Hasher::Sha256(sha2::Sha256::new()) }
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
        }
    }
    fn finish(self) -> String {
        match self {
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_utf8_name_wins_over_the_ascii_one() {
        let v = "attachment; filename=\"r_sum_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt";
        assert_eq!(disposition_name(v).as_deref(), Some("résumé.txt"));
        assert_eq!(disposition_name("attachment; filename=\"a b.txt\"").as_deref(), Some("a b.txt"));
    }

    #[test]
    fn the_part_file_sits_beside_the_output() {
        assert_eq!(part_path(Path::new("/tmp/x/a.bin")), PathBuf::from("/tmp/x/a.bin.part"));
    }
}
