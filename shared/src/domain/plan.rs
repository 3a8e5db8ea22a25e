use crate::domain::error::{Error, ErrorCode, Result};

/// How a file is cut into chunks: every chunk is `chunk_size` bytes but the
/// last, which holds the rest. A 0-byte file has no chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    /// Size of the whole file in bytes.
    pub file_size: u64,
    /// Size of every chunk but the last.
    pub chunk_size: u64,
    /// Number of chunks.
    pub chunk_count: u64,
}

impl ChunkPlan {
    /// The server's choice for a file: the preferred chunk size, grown (to a
    /// whole MiB) when needed so the file fits in `max_chunks` chunks.
    pub fn for_file(file_size: u64, preferred: u64, max_chunks: u64) -> Self {
        let mut chunk_size = preferred.max(1);
        if file_size.div_ceil(chunk_size) > max_chunks {
            let needed = file_size.div_ceil(max_chunks);
            chunk_size = needed.div_ceil(1 << 20) * (1 << 20);
        }
        Self::with_chunk_size(file_size, chunk_size)
    }

    /// A plan with a given chunk size (as stored with a session).
    pub fn with_chunk_size(file_size: u64, chunk_size: u64) -> Self {
        ChunkPlan { file_size, chunk_size, chunk_count: file_size.div_ceil(chunk_size.max(1)) }
    }

    /// Checks that `index` names a chunk of this plan.
    pub fn check_index(&self, index: u64) -> Result<()> {
        if index < self.chunk_count {
            Ok(())
        } else if self.chunk_count == 0 {
            Err(Error::invalid(ErrorCode::InvalidChunkIndex, "this upload has no chunks (0-byte file)"))
        } else {
            Err(Error::invalid(
                ErrorCode::InvalidChunkIndex,
                format!("chkidx must be between 0 and {}", self.chunk_count - 1),
            ))
        }
    }

    /// Byte offset of chunk `index` in the file.
    pub fn offset(&self, index: u64) -> u64 {
        index * self.chunk_size
    }

    /// Exact length of chunk `index`.
    pub fn chunk_len(&self, index: u64) -> u64 {
        self.chunk_size.min(self.file_size - self.offset(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_zero_byte_file_has_no_chunks() {
        let p = ChunkPlan::for_file(0, 8 * MIB, 10_000);
        assert_eq!(p.chunk_count, 0);
        assert!(p.check_index(0).is_err());
    }

    #[test]
    fn the_last_chunk_holds_the_remainder() {
        let p = ChunkPlan::for_file(8 * MIB + 1, 8 * MIB, 10_000);
        assert_eq!(p.chunk_count, 2);
        assert_eq!(p.chunk_len(0), 8 * MIB);
        assert_eq!(p.chunk_len(1), 1);
        let exact = ChunkPlan::for_file(8 * MIB, 8 * MIB, 10_000);
        assert_eq!(exact.chunk_count, 1);
        assert_eq!(exact.chunk_len(0), 8 * MIB);
    }

    #[test]
    fn huge_files_get_bigger_chunks_and_never_more_than_the_limit() {
        for size in [80_000 * MIB, 80_000 * MIB + 1, 1 << 40, (1 << 40) + 12345] {
            let p = ChunkPlan::for_file(size, 8 * MIB, 10_000);
            assert!(p.chunk_count <= 10_000, "{size}: {p:?}");
            assert_eq!(p.chunk_size % MIB, 0);
            let sum: u64 = (0..p.chunk_count).map(|i| p.chunk_len(i)).sum();
            assert_eq!(sum, size);
        }
    }
}
