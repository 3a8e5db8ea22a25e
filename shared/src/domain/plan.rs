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

    /// The bytes chunk `index` covers.
    pub fn segment(&self, index: u64) -> Segment {
        Segment { start: self.offset(index), len: self.chunk_len(index) }
    }

    /// The chunk `segment` is, when it is exactly one.
    pub fn index_of(&self, segment: Segment) -> Option<u64> {
        let index = segment.start / self.chunk_size.max(1);
        (index < self.chunk_count && self.segment(index) == segment).then_some(index)
    }

    /// The chunks the running hash has passed when it has hashed `bytes`
    /// from the start (it passes whole chunks).
    pub fn chunks_within(&self, bytes: u64) -> u64 {
        bytes.min(self.file_size).div_ceil(self.chunk_size.max(1))
    }
}

/// Bytes `start..start + len` of an upload, received by one send and
/// staged as one piece: a chunk of the fixed-size protocol, or any byte
/// range (an append at the end, a range named by its offsets). An upload's
/// segments never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Segment {
    /// Offset of its first byte.
    pub start: u64,
    /// Its length in bytes (never 0 once staged).
    pub len: u64,
}

impl Segment {
    /// The offset just past its last byte.
    pub fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Whether it shares a byte with `other`.
    pub fn overlaps(&self, other: &Segment) -> bool {
        self.start < other.end() && other.start < self.end()
    }
}

/// The byte ranges `segments` (in order, not overlapping) cover, adjacent
/// ones joined: `start..end` pairs, as a client resuming an upload reads them.
pub fn covered_ranges(segments: impl IntoIterator<Item = Segment>) -> Vec<std::ops::Range<u64>> {
    let mut ranges: Vec<std::ops::Range<u64>> = Vec::new();
    for s in segments {
        match ranges.last_mut() {
            Some(last) if last.end == s.start => last.end = s.end(),
            _ => ranges.push(s.start..s.end()),
        }
    }
    ranges
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
    fn chunks_are_segments_and_only_exact_ones_are_chunks() {
        let p = ChunkPlan::with_chunk_size(2500, 1024);
        assert_eq!(p.segment(2), Segment { start: 2048, len: 452 });
        assert_eq!(p.index_of(Segment { start: 1024, len: 1024 }), Some(1));
        assert_eq!(p.index_of(Segment { start: 2048, len: 452 }), Some(2));
        assert_eq!(p.index_of(Segment { start: 1024, len: 1000 }), None);
        assert_eq!(p.index_of(Segment { start: 1000, len: 1024 }), None);
        assert_eq!(p.index_of(Segment { start: 3072, len: 1024 }), None);
        assert_eq!((p.chunks_within(0), p.chunks_within(2048), p.chunks_within(2500)), (0, 2, 3));
    }

    #[test]
    fn covered_ranges_join_adjacent_segments_and_keep_gaps() {
        let s = |start, len| Segment { start, len };
        assert_eq!(covered_ranges([s(0, 10), s(10, 5), s(20, 1), s(21, 4), s(40, 1)]), vec![0..15, 20..25, 40..41]);
        assert!(covered_ranges([]).is_empty());
        assert!(s(0, 10).overlaps(&s(9, 1)) && !s(0, 10).overlaps(&s(10, 1)) && s(5, 1).overlaps(&s(0, 10)));
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
