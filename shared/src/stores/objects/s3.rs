//! A byte store in an S3-compatible bucket (AWS, Garage, Aliyun OSS), under
//! an optional key prefix. Files go up in parts, downloads can be handed
//! out as presigned URLs, and each chunk is an object of its own. A merge
//! into a bucket of the same service makes the file from those objects by
//! server-side part copies (`UploadPartCopy`): the stored file is never
//! written through pan nor lands on its disk. Where that cannot be (chunks
//! below S3's 5 MiB part minimum or more than 10,000 of them, another
//! service, a store that refuses part copies, SSE-C or part checksums, a
//! proxy or other certificates for object_store's client) the merge fetches
//! the chunks into one local file and uploads it.

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

use super::{
    Backing, ByteStore, ByteStream, ChunkSink, ChunkWriteError, CopySource, ObjectInfo, S3_PART_SIZE, SegmentAt,
    TempFile,
};
use crate::domain::Segment;
use crate::domain::error::{Error, Result, ResultExt};

/// Where a store's objects lie.
#[derive(Debug, Clone)]
pub struct Location {
    /// The service (its endpoint, or AWS and its region): stores of the
    /// same one copy between each other on the server's side. `None`: this
    /// store makes no server-side copies (see [`super::open`]).
    pub service: Option<String>,
    /// Whether pan's own requests (part copies, listing unfinished uploads)
    /// reach the store: not when object_store's client needs a proxy or
    /// other certificates, which pan's client would not use.
    pub own_requests: bool,
    /// The bucket.
    pub bucket: String,
    /// The key prefix (`""` or `"/"` for the whole bucket).
    pub prefix: String,
}

/// S3 completes no upload of more parts than this.
const MAX_PARTS: u64 = 10_000;
/// How long a URL pan signs for its own requests stays valid.
const SIGNED_URL_TTL: Duration = Duration::from_secs(600);
/// How often a part copy is tried while the service is away.
const COPY_TRIES: u32 = 3;
/// Part copies in flight at once (the service does the work).
const COPIES_IN_FLIGHT: usize = 16;
/// Pages of unfinished multipart uploads looked at per clean-up (1,000 each).
const LIST_PAGES: usize = 10;

/// The text of the first `<name>` element in `xml`, unescaped.
fn xml_field(xml: &str, name: &str) -> Option<String> {
    let (_, rest) = xml.split_once(&format!("<{name}>"))?;
    let (text, _) = rest.split_once(&format!("</{name}>"))?;
    let text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#34;", "\"");
    let text = text.replace("&apos;", "'");
    Some(text.replace("&amp;", "&"))
}

/// A store in an S3-compatible bucket.
pub struct S3Store {
    /// The bucket with the prefix applied.
    backing: Backing,
    /// The bare bucket, for signing URLs and multipart uploads (both see
    /// whole keys).
    s3: Arc<AmazonS3>,
    /// The key prefix, if any.
    prefix: Option<Path>,
    /// The service and bucket (for server-side copies).
    location: Location,
    /// Sends the signed part copies object_store has no call for.
    http: reqwest::Client,
    /// Where files bound for the bucket are assembled, and fetched chunks kept.
    scratch: PathBuf,
}

impl S3Store {
    /// The store over `s3` at `location`, assembling files in `scratch`.
    pub fn new(s3: AmazonS3, location: Location, scratch: PathBuf) -> Self {
        let s3 = Arc::new(s3);
        let prefix = location.prefix.trim_matches('/');
        let (store, prefix): (Arc<dyn ObjectStore>, _) = if prefix.is_empty() {
            (s3.clone(), None)
        } else {
            (Arc::new(PrefixStore::new(s3.clone(), prefix)), Some(Path::from(prefix)))
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap_or_default();
        S3Store { backing: Backing { store, part_size: S3_PART_SIZE }, s3, prefix, location, http, scratch }
    }

    /// `key` with the prefix: the key in the bucket.
    fn full(&self, key: &Path) -> Path {
        match &self.prefix {
            Some(p) => p.parts().chain(key.parts()).collect(),
            None => key.clone(),
        }
    }

    /// [`S3Store::try_copy_part`], again after a short wait while the
    /// service is away (3 tries, each request signed anew).
    async fn copy_part(&self, full: &Path, upload: &str, index: usize, source: &CopySource) -> Result<Option<PartId>> {
        let mut wait = Duration::from_millis(200);
        for _ in 1..COPY_TRIES {
            match self.try_copy_part(full, upload, index, source).await {
                Err(e) if e.is_unavailable() => {
                    tracing::debug!(error = %e, part = index + 1, "a part copy failed; trying again");
                    tokio::time::sleep(wait).await;
                    wait *= 4;
                }
                other => return other,
            }
        }
        self.try_copy_part(full, upload, index, source).await
    }

    /// Sends a request object_store has no call for, on a URL it signs for
    /// `path` with `options` (and `header`, signed and sent along); returns
    /// the status and the body. A store that cannot be reached is away.
    async fn send_signed(
        &self,
        method: reqwest::Method,
        path: &Path,
        options: object_store::signer::SignedUrlOptions,
        header: Option<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    ) -> Result<(reqwest::StatusCode, String)> {
        use object_store::signer::Signer;
        let options = match &header {
            Some((name, value)) => options.with_signed_header(name.clone(), value.clone()),
            None => options,
        };
        let url = self.s3.signed_url_opts(method.clone(), path, SIGNED_URL_TTL, &options).await?;
        let away = |e: reqwest::Error| Error::Unavailable { what: "object store", source: Box::new(e) };
        let mut request = self.http.request(method, url);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let resp = request.send().await.map_err(away)?;
        let status = resp.status();
        Ok((status, resp.text().await.map_err(away)?))
    }

    /// Copies `source` on the server's side as part `index` (from 0) of the
    /// multipart upload `upload` of `full`; `None` when the service refuses
    /// part copies (a 4xx other than 408 and 429, or `NotImplemented`: the
    /// merge then assembles the file instead).
    async fn try_copy_part(
        &self,
        full: &Path,
        upload: &str,
        index: usize,
        source: &CopySource,
    ) -> Result<Option<PartId>> {
        use object_store::signer::SignedUrlOptions;
        use reqwest::header::{HeaderName, HeaderValue};
        // Keys are made by the server ([0-9a-z./]): nothing to escape.
        let from = format!("/{}/{}", source.bucket, source.key);
        let value = HeaderValue::from_str(&from).map_err(|e| Error::internal("copying a chunk into its file", e))?;
        let header = (HeaderName::from_static("x-amz-copy-source"), value);
        let options = SignedUrlOptions::default()
            .with_query([("partNumber", (index + 1).to_string()), ("uploadId", upload.to_owned())]);
        let (status, body) = self.send_signed(reqwest::Method::PUT, full, options, Some(header)).await?;
        // S3 may answer 200 and still have failed a copy: the body says which.
        let etag = xml_field(&body, "ETag");
        match etag {
            Some(etag) if status.is_success() && body.contains("<CopyPartResult") => {
                Ok(Some(PartId { content_id: etag }))
            }
            _ => {
                use reqwest::StatusCode;
                let failure = format!("part {} from {from}: {status}: {}", index + 1, body.trim());
                let transient = [StatusCode::REQUEST_TIMEOUT, StatusCode::TOO_MANY_REQUESTS].contains(&status);
                let refused = status == StatusCode::NOT_IMPLEMENTED
                    || body.contains("<Code>NotImplemented</Code>")
                    || (status.is_client_error() && !transient);
                if refused {
                    tracing::warn!(failure, "the store refused a server-side part copy; assembling the file instead");
                    Ok(None)
                } else {
                    // A 5xx, a 408 or 429, or a 200 whose body says the copy failed.
                    Err(Error::Unavailable { what: "object store", source: failure.into() })
                }
            }
        }
    }
}

#[async_trait]
impl ByteStore for S3Store {
    fn part_size(&self) -> usize {
        self.backing.part_size
    }

    fn scratch_dir(&self) -> &FsPath {
        &self.scratch
    }

    /// A multipart upload of 8 MiB parts, at most 4 in flight; the object
    /// exists once S3 acknowledged the completion.
    async fn put_file(&self, tmp: &mut TempFile, key: &Path) -> Result<()> {
        let mut f = tokio::fs::File::open(&tmp.path).await.context("opening the assembled file")?;
        let upload = self.backing.store.put_multipart(key).await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
        let mut buf = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            let n = f.read(&mut buf).await.context("reading the assembled file")?;
            if n == 0 {
                break;
            }
            w.wait_for_capacity(4).await?;
            w.write(&buf[..n]);
            written += n as u64;
        }
        self.backing.finish(w, key, written).await?;
        Ok(())
    }

    async fn read(&self, key: &Path, range: Option<Range<u64>>) -> Result<Option<ByteStream>> {
        self.backing.read(key, range).await
    }

    async fn head(&self, key: &Path) -> Result<Option<ObjectInfo>> {
        self.backing.head(key).await
    }

    async fn delete(&self, key: &Path) -> Result<()> {
        self.backing.delete(key).await
    }

    /// Lists, then deletes one by one (unfinished multipart uploads are
    /// not objects; the clean-up aborts them after a day).
    async fn delete_prefix(&self, prefix: &Path) -> Result<usize> {
        self.backing.delete_listed(prefix).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectInfo>> {
        self.backing.list(prefix)
    }

    async fn list_prefixes(&self) -> Result<Vec<Path>> {
        self.backing.list_prefixes().await
    }

    /// Signed with `response-content-disposition` in the query, so the
    /// bucket names the file as pan would.
    async fn presign_get(&self, key: &Path, expires_in: Duration, disposition: &str) -> Result<Option<url::Url>> {
        use object_store::signer::{Method, SignedUrlOptions, Signer};
        let full = self.full(key);
        let options = SignedUrlOptions::default().with_query([("response-content-disposition", disposition)]);
        Ok(Some(self.s3.signed_url_opts(Method::GET, &full, expires_in, &options).await?))
    }

    /// A new object per send (a nonce in its key), so concurrent or
    /// repeated sends never write the same object.
    async fn open_segment(
        &self,
        at: SegmentAt<'_>,
        _replacing: bool,
    ) -> std::result::Result<ChunkSink, ChunkWriteError> {
        self.backing.open_object(super::segment_key(at.id, at.segment.start)).await
    }

    async fn read_segment(&self, key: &Path, _segment: Segment) -> Result<Option<ByteStream>> {
        self.backing.read(key, None).await
    }

    /// A segment is an object of its own: the service copies it (one
    /// `CopyObject`, no bytes through pan).
    async fn copy_segment(&self, from: &Path, _from_segment: Segment, at: SegmentAt<'_>) -> Result<Option<Path>> {
        let key = super::segment_key(at.id, at.segment.start);
        self.backing.store.copy(from, &key).await?;
        Ok(Some(key))
    }

    async fn copy_from(&self, from: &dyn ByteStore, from_key: &Path, to_key: &Path) -> Result<u64> {
        self.backing.copy_from(from, from_key, to_key).await
    }

    /// Lists the bucket's unfinished multipart uploads under the prefix
    /// (`ListMultipartUploads`, which object_store has no call for, signed
    /// by it) a page at a time, and aborts those begun before the cutoff.
    /// Only under a prefix of pan's own: a store at the bucket's root could
    /// share it with others, whose uploads are not pan's to abort.
    async fn abort_stale_uploads(&self, older_than: Duration) -> Result<usize> {
        use object_store::signer::SignedUrlOptions;
        if self.prefix.is_none() || !self.location.own_requests {
            return Ok(0);
        }
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(older_than).unwrap_or(chrono::TimeDelta::MAX);
        let prefix = self.prefix.as_ref().map(|p| format!("{p}/")).unwrap_or_default();
        let (mut aborted, mut markers) = (0, None::<(String, String)>);
        for _ in 0..LIST_PAGES {
            let mut query = vec![("uploads".to_owned(), String::new()), ("prefix".to_owned(), prefix.clone())];
            if let Some((key, upload)) = markers.take() {
                query.push(("key-marker".to_owned(), key));
                query.push(("upload-id-marker".to_owned(), upload));
            }
            let options = SignedUrlOptions::default().with_query(query);
            let (status, body) = self.send_signed(reqwest::Method::GET, &Path::default(), options, None).await?;
            if !status.is_success() || !body.contains("<ListMultipartUploadsResult") {
                let failure = format!("listing unfinished multipart uploads: {status}: {}", body.trim());
                return Err(Error::Unavailable { what: "object store", source: failure.into() });
            }
            for upload in body.split("<Upload>").skip(1) {
                let (Some(key), Some(id)) = (xml_field(upload, "Key"), xml_field(upload, "UploadId")) else { continue };
                let begun = xml_field(upload, "Initiated").and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
                let Ok(path) = Path::parse(&key) else { continue }; // not a key pan made
                if begun.is_some_and(|t| t <= cutoff) && key.starts_with(&prefix) {
                    // One that fails (gone already: another clean-up was
                    // first) does not stop the others.
                    match self.s3.abort_multipart(&path, &id).await {
                        Ok(()) => aborted += 1,
                        Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => tracing::warn!(error = %e, key, "aborting an unfinished multipart upload failed"),
                    }
                }
            }
            if xml_field(&body, "IsTruncated").as_deref() != Some("true") {
                break;
            }
            match (xml_field(&body, "NextKeyMarker"), xml_field(&body, "NextUploadIdMarker")) {
                (Some(key), Some(upload)) => markers = Some((key, upload)),
                _ => break,
            }
        }
        Ok(aborted)
    }

    fn copy_source(&self, key: &Path) -> Option<CopySource> {
        let service = self.location.service.clone()?;
        let key = self.full(key).to_string();
        let plain = key.bytes().all(|c| c.is_ascii_alphanumeric() || b"./-_".contains(&c));
        plain.then(|| CopySource { service, bucket: self.location.bucket.clone(), key })
    }

    /// A multipart upload whose parts are copied from the segment objects
    /// on the server's side, `parallel` at a time; aborted on any failure,
    /// so `key` is untouched unless all of it is there. Every part but the
    /// last must be at least S3's 5 MiB, and there may be 10,000 at most.
    async fn compose(&self, sources: &[CopySource], lens: &[u64], key: &Path, parallel: usize) -> Result<bool> {
        let parts_fit = (1..=MAX_PARTS).contains(&(sources.len() as u64))
            && sources.len() == lens.len()
            && lens[..lens.len() - 1].iter().all(|&n| n >= S3_PART_SIZE as u64);
        let Some(service) = &self.location.service else { return Ok(false) };
        if !parts_fit || sources.iter().any(|s| &s.service != service) {
            return Ok(false);
        }
        let full = self.full(key);
        let upload = self.s3.create_multipart(&full).await?;
        let copies = (0..sources.len()).map(|i| self.copy_part(&full, &upload, i, &sources[i]));
        // The copies cost pan nothing but a request each: at least
        // COPIES_IN_FLIGHT at once, whatever the merge's thread count.
        let in_flight = parallel.max(COPIES_IN_FLIGHT);
        let copied = futures::stream::iter(copies).buffered(in_flight).try_collect::<Vec<_>>().await;
        let completed = match copied.map(|parts| parts.into_iter().collect::<Option<Vec<PartId>>>()) {
            Ok(Some(parts)) => match self.s3.complete_multipart(&full, &upload, parts).await {
                Ok(_) => Ok(true),
                // object_store reports a refused completion (a 4xx) like an
                // outage; either way the file can still be assembled and
                // put, which fails (and is retried) if the store is away.
                Err(e) => {
                    tracing::warn!(error = %e, "completing a server-side copy failed; assembling the file instead");
                    Ok(false)
                }
            },
            Ok(None) => Ok(false), // the merge assembles the file instead
            Err(e) => Err(e),
        };
        if !matches!(completed, Ok(true))
            && let Err(abort) = self.s3.abort_multipart(&full, &upload).await
        {
            tracing::warn!(error = %abort, "aborting an unfinished server-side copy failed; the clean-up aborts it after a day");
        }
        completed
    }
}
