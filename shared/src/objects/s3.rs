//! A byte store in an S3-compatible bucket (AWS, Garage, Aliyun OSS), under
//! an optional key prefix. Files go up in parts, downloads can be handed
//! out as presigned URLs, and each chunk is an object of its own, which the
//! merge fetches into one local file.

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

use super::{Backing, ByteStore, ByteStream, ChunkBody, ChunkWriteError, ObjectInfo, S3_PART_SIZE, TempFile};
use crate::domain::{ChunkPlan, UploadId};
use crate::error::{Result, ResultExt};

/// A store in an S3-compatible bucket.
pub struct S3Store {
    /// The bucket with the prefix applied.
    backing: Backing,
    /// The bare bucket, for signing URLs (signing sees whole keys).
    s3: Arc<AmazonS3>,
    /// The key prefix, if any.
    prefix: Option<Path>,
    /// Where files bound for the bucket are assembled, and fetched chunks kept.
    scratch: PathBuf,
}

impl S3Store {
    /// The store over `s3` under `prefix` (`""` or `"/"` for the whole
    /// bucket), assembling files in `scratch`.
    pub fn new(s3: AmazonS3, prefix: &str, scratch: PathBuf) -> Self {
        let s3 = Arc::new(s3);
        let prefix = prefix.trim_matches('/');
        let (store, prefix): (Arc<dyn ObjectStore>, _) = if prefix.is_empty() {
            (s3.clone(), None)
        } else {
            (Arc::new(PrefixStore::new(s3.clone(), prefix)), Some(Path::from(prefix)))
        };
        S3Store { backing: Backing { store, part_size: S3_PART_SIZE }, s3, prefix, scratch }
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
    /// not objects; the bucket's lifecycle rule expires them).
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
        let full = match &self.prefix {
            Some(p) => p.parts().chain(key.parts()).collect(),
            None => key.clone(),
        };
        let options = SignedUrlOptions::default().with_query([("response-content-disposition", disposition)]);
        Ok(Some(self.s3.signed_url_opts(Method::GET, &full, expires_in, &options).await?))
    }

    /// A new object per send (a nonce in its key), so concurrent or
    /// repeated sends never write the same object.
    async fn write_chunk(
        &self,
        id: &UploadId,
        plan: &ChunkPlan,
        index: u64,
        _replacing: bool,
        checksum: Option<[u8; 20]>,
        min_rate: u64,
        body: &mut ChunkBody<'_>,
    ) -> std::result::Result<Path, ChunkWriteError> {
        let key = super::chunk_key(id, index);
        self.backing.write_chunk_object(&key, index, plan.chunk_len(index), checksum, min_rate, body).await?;
        Ok(key)
    }

    async fn read_chunk(&self, key: &Path, _plan: &ChunkPlan, _index: u64) -> Result<Option<ByteStream>> {
        self.backing.read(key, None).await
    }

    async fn copy_from(&self, from: &dyn ByteStore, from_key: &Path, to_key: &Path) -> Result<u64> {
        self.backing.copy_from(from, from_key, to_key).await
    }
}
