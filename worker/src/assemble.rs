//! The blocking heart of a merge: preallocate the output, memory-map it, copy
//! the chunks into their offsets from several threads, and hash the result in
//! order while the copy goes on (chunk i is hashed as soon as chunks 0..=i are
//! in place), so the SHA-1 and SHA-256 cost little more than the copy.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use memmap2::MmapMut;
use shared::hashing::{ContentHasher, Digests};

/// The result of assembling a file.
#[derive(Debug, Clone)]
pub struct Assembled {
    /// SHA-1 and SHA-256 of the assembled bytes.
    pub digests: Digests,
    /// Wall time of copy + hash, in seconds.
    pub seconds: f64,
}

/// Reserves `len` bytes on disk for `file`, so a full disk fails here with
/// ENOSPC instead of killing the process with SIGBUS when the map is written.
pub fn preallocate(file: &File, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: plain syscall on a file descriptor we own; no memory is shared.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    match rc {
        0 => Ok(()),
        // Filesystems without fallocate: fall back to a sparse file.
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Writes chunk `i` (read from `sources[i]`) at offset `i * chunk_size` of
/// `out`, which becomes `file_size` bytes long; returns the digests of the whole.
/// `threads` copies run at once. Every source must hold exactly its chunk's
/// length, or the assembly fails.
pub fn assemble(
    out: &File,
    file_size: u64,
    chunk_size: u64,
    sources: &[PathBuf],
    threads: usize,
) -> io::Result<Assembled> {
    let started = Instant::now();
    preallocate(out, file_size)?;
    if file_size == 0 {
        out.sync_all()?;
        return Ok(Assembled { digests: ContentHasher::digest(&[]), seconds: 0.0 });
    }
    // SAFETY: the file is our private temporary file, preallocated above; no
    // other process truncates it while it is mapped.
    let mut map = unsafe { MmapMut::map_mut(out)? };
    let slices: Vec<(usize, &mut [u8])> = map.chunks_mut(chunk_size as usize).enumerate().collect();
    if slices.len() != sources.len() {
        return Err(io::Error::other(format!("{} chunks expected, {} given", slices.len(), sources.len())));
    }
    let queue = Mutex::new(slices.into_iter());
    let failed = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, io::Result<&[u8]>)>();
    let digests = std::thread::scope(|s| -> io::Result<Digests> {
        for _ in 0..threads.max(1) {
            let tx = tx.clone();
            let (queue, failed) = (&queue, &failed);
            s.spawn(move || {
                loop {
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                    let Some((i, slice)) = next else { break };
                    let result = copy_chunk(&sources[i], slice);
                    if tx.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut hasher = ContentHasher::new();
        let mut ready = BTreeMap::new();
        let mut next = 0usize;
        for (i, result) in rx {
            match result {
                Ok(slice) => {
                    ready.insert(i, slice);
                }
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    return Err(io::Error::new(e.kind(), format!("chunk {i}: {e}")));
                }
            }
            while let Some(slice) = ready.remove(&next) {
                hasher.update(slice);
                next += 1;
            }
        }
        Ok(hasher.finish())
    })?;
    map.flush()?;
    drop(map);
    out.sync_all()?;
    Ok(Assembled { digests, seconds: started.elapsed().as_secs_f64() })
}

/// Fills `slice` from `path`, which must be exactly as long as the slice.
fn copy_chunk<'a>(path: &PathBuf, slice: &'a mut [u8]) -> io::Result<&'a [u8]> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if len != slice.len() as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds {len} bytes, {} expected", path.display(), slice.len()),
        ));
    }
    f.read_exact(slice)?;
    Ok(slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_chunks(dir: &std::path::Path, data: &[u8], chunk: usize) -> Vec<PathBuf> {
        data.chunks(chunk)
            .enumerate()
            .map(|(i, c)| {
                let p = dir.join(format!("{i}"));
                std::fs::write(&p, c).unwrap();
                p
            })
            .collect()
    }

    #[test]
    fn assembles_chunks_in_place_and_hashes_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i * 7 % 251) as u8).collect();
        let sources = write_chunks(dir.path(), &data, 65_536);
        let out_path = dir.path().join("out");
        let out = File::options().read(true).write(true).create(true).truncate(true).open(&out_path).unwrap();
        let got = assemble(&out, data.len() as u64, 65_536, &sources, 3).unwrap();
        assert_eq!(got.digests, ContentHasher::digest(&data));
        assert_eq!(std::fs::read(&out_path).unwrap(), data);
    }

    #[test]
    fn an_empty_file_has_the_empty_sha1() {
        let dir = tempfile::tempdir().unwrap();
        let out = File::create(dir.path().join("out")).unwrap();
        let got = assemble(&out, 0, 1024, &[], 2).unwrap();
        assert_eq!(got.digests.sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn a_short_chunk_fails_the_assembly() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![1u8; 3000];
        let mut sources = write_chunks(dir.path(), &data, 1024);
        std::fs::write(&sources[1], [1u8; 10]).unwrap();
        sources.truncate(3);
        let out =
            File::options().read(true).write(true).create(true).truncate(true).open(dir.path().join("o")).unwrap();
        let err = assemble(&out, 3000, 1024, &sources, 2).unwrap_err();
        assert!(err.to_string().contains("chunk 1"), "{err}");
    }
}
