//! Process-wide counters for `/metrics` (Prometheus text format). Counters
//! are per process; the gauges the api adds on each scrape come from the
//! database, so they cover the whole fleet.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
pub struct Counter {
    name: &'static str,
    help: &'static str,
    value: AtomicU64,
}

impl Counter {
    const fn new(name: &'static str, help: &'static str) -> Self {
        Counter { name, help, value: AtomicU64::new(0) }
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }
}

/// Uploads created by `init` (not resumed, not instant).
pub static UPLOADS_CREATED: Counter = Counter::new("pan_uploads_created_total", "Uploads created by init.");
/// Instant uploads (content already stored).
pub static UPLOADS_INSTANT: Counter = Counter::new("pan_uploads_instant_total", "Inits answered instant (dedup).");
/// Chunks received and recorded.
pub static CHUNKS_RECEIVED: Counter = Counter::new("pan_chunks_received_total", "Chunks received and recorded.");
/// Bytes of chunks received and recorded.
pub static CHUNK_BYTES: Counter = Counter::new("pan_chunk_bytes_received_total", "Bytes of recorded chunks.");
/// Merges that ended `done`.
pub static MERGES_DONE: Counter = Counter::new("pan_merges_done_total", "Merges that stored a verified file.");
/// Merges that ended `failed`.
pub static MERGES_FAILED: Counter = Counter::new("pan_merges_failed_total", "Merges that ended failed.");
/// Bytes assembled and hashed by merges.
pub static MERGE_BYTES: Counter = Counter::new("pan_merge_bytes_total", "Bytes assembled and verified by merges.");
/// Backups written.
pub static BACKUPS_DONE: Counter = Counter::new("pan_backups_done_total", "Files copied to the backup store.");
/// Backup attempts that failed.
pub static BACKUPS_FAILED: Counter = Counter::new("pan_backups_failed_total", "Backup attempts that failed.");

static ALL: [&Counter; 9] = [
    &UPLOADS_CREATED,
    &UPLOADS_INSTANT,
    &CHUNKS_RECEIVED,
    &CHUNK_BYTES,
    &MERGES_DONE,
    &MERGES_FAILED,
    &MERGE_BYTES,
    &BACKUPS_DONE,
    &BACKUPS_FAILED,
];

/// Every counter of this process, in Prometheus text format.
pub fn render_counters(out: &mut String) {
    use std::fmt::Write;
    for c in ALL {
        let _ = writeln!(
            out,
            "# HELP {} {}\n# TYPE {} counter\n{} {}",
            c.name,
            c.help,
            c.name,
            c.name,
            c.value.load(Ordering::Relaxed)
        );
    }
}

/// Appends one gauge.
pub fn render_gauge(out: &mut String, name: &str, help: &str, value: i64) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}
