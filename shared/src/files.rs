//! File use cases that touch both the metadata and the bytes.

use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::backends::Backends;
use crate::domain::{Sha1Hex, User};
use crate::error::Result;

/// Removes the user's entry; deletes the bytes once nobody references them
/// (after the row is gone, so a reader never sees a row without bytes).
#[tracing::instrument(name = "delete file", skip(b, user), fields(user = user.id))]
pub async fn delete(b: &Backends, user: &User, filehash: &Sha1Hex) -> Result<()> {
    if let Some(orphan) = b.repo.delete_file(user.id, filehash.as_str()).await? {
        match b
            .files
            .delete(&Path::from(orphan.storage_key.as_str()))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(key = %orphan.storage_key, error = %e, "could not delete unreferenced file bytes")
            }
        }
        tracing::info!(filehash = %filehash, "last reference gone: bytes deleted");
    }
    Ok(())
}
