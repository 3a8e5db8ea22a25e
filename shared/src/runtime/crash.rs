//! Named crash points, for the crash tests. They exist only in builds with
//! the `crash-points` feature (test builds turn it on through the test
//! crate's dev-dependency; release builds never have it). There,
//! `PAN_CRASH_AT=<name>[,<name>…]` makes the process SIGKILL itself when it
//! reaches a named point: the harshest crash, at an exact step.
//!
//! The points, in the order an upload passes them:
//! - `uppart.after_write`: a chunk's bytes are durable, its mark is not;
//! - `uppart.after_mark`: marked, the answer not sent;
//! - `merge.after_assemble`: the staged file is in the store's scratch;
//! - `merge.after_store`: the file is at its key, no rows yet;
//! - `merge.after_commit`: rows committed, the upload still `merging`;
//! - `merge.after_done`: `done`, the staged chunks not yet deleted;
//! - `upload.after_store`: a single upload's file stored, no rows yet;
//! - `purge.after_rows`: a purge's rows are gone, the bytes not yet;
//! - `backup.after_copy`: the backup copy exists, not yet recorded.
//! - `tus.after_turn`: a tus `PATCH` holds its upload's turn to send.

/// Arms the points named in `PAN_CRASH_AT`, and the faults of
/// `PAN_FAULT_AT` (a no-op without the feature).
pub fn arm() {
    #[cfg(feature = "crash-points")]
    if let Ok(faults) = std::env::var("PAN_FAULT_AT") {
        eprintln!("faults armed: {faults}");
        for fault in faults.split(';').map(str::trim).filter(|f| !f.is_empty()) {
            let (name, actions) = fault.split_once('=').unwrap_or((fault, "return"));
            if let Err(e) = fail::cfg(name, actions) {
                eprintln!("PAN_FAULT_AT: {name}: {e}");
            }
        }
    }
    #[cfg(not(feature = "crash-points"))]
    if std::env::var_os("PAN_CRASH_AT").is_some() {
        eprintln!("PAN_CRASH_AT is set, but this build has no crash points (only test builds have them)");
    }
    #[cfg(feature = "crash-points")]
    if let Ok(names) = std::env::var("PAN_CRASH_AT") {
        eprintln!("crash points armed: {names}");
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let armed = fail::cfg_callback(name, || {
                eprintln!("crash point reached: SIGKILL");
                // SAFETY: kill(2) of our own process; nothing returns from it.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            });
            if let Err(e) = armed {
                eprintln!("PAN_CRASH_AT: {name}: {e}");
            }
        }
    }
}

/// A named step; with the feature and `PAN_CRASH_AT` naming it, the process
/// dies here.
#[inline(always)]
pub fn point(_name: &'static str) {
    #[cfg(feature = "crash-points")]
    fail::fail_point!(_name);
}

/// Whether the named fault fires here: only in builds with the feature,
/// when `PAN_FAULT_AT=<name>=<actions>` arms it with `fail`'s actions (e.g.
/// `tree.list_children=1*off->return`: every call but the first fails).
/// The faults: `tree.list_children` (a folder listing's page: the
/// database fails); `tree.supersede` (an overwriting move or copy fails
/// after it put what was there into the trash, inside its transaction).
#[inline(always)]
pub fn fault(_name: &'static str) -> bool {
    #[cfg(feature = "crash-points")]
    fail::fail_point!(_name, |_| true);
    false
}
