//! Versions: a file's earlier contents, and the rule that thins them out.

use crate::domain::{Author, StoredFile};

/// One of a file's earlier contents.
#[derive(Debug, Clone)]
pub struct Version {
    /// Its opaque id.
    pub id: String,
    /// The entry whose content it was.
    pub entry_id: String,
    /// Its size in bytes.
    pub filesize: i64,
    /// The file's modification time it had.
    pub mtime: i64,
    /// When it stopped being the current content (Unix seconds).
    pub replaced_at: i64,
    /// Who replaced it.
    pub author: Author,
    /// The owner's label for it.
    pub label: Option<String>,
    /// Pinned versions never expire.
    pub pinned: bool,
    /// The content.
    pub content: StoredFile,
}

/// A version as the expiry rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aged {
    /// The version's id.
    pub id: String,
    /// When its content was replaced (Unix seconds).
    pub replaced_at: i64,
    /// Pinned versions are kept and take no slot.
    pub pinned: bool,
}

/// The bands of age a version falls in, `[from, to)` seconds, each cut into
/// slots of `step` seconds: in each slot only the newest version is kept.
const BANDS: [(i64, i64, i64); 6] = [
    (0, 10, 2),
    (10, 60, 10),
    (60, 3_600, 60),
    (3_600, 86_400, 3_600),
    (86_400, 30 * 86_400, 86_400),
    (30 * 86_400, i64::MAX, 7 * 86_400),
];

/// The most unpinned versions one file keeps.
pub const MAX_UNPINNED: usize = 100;

/// What the rule keeps of a file's versions.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// Unpinned versions at least this old (seconds) expire; 0: no age limit.
    pub max_age: i64,
    /// The most unpinned versions kept (the newest).
    pub max_count: usize,
}

/// The ids of `versions` (one file's) that expire at `now`. With age =
/// now − replaced_at: in each band's slot ⌊age / step⌋ the newest version
/// is kept and the rest expire; pinned versions are kept and take no slot;
/// then unpinned versions at least `max_age` old expire, and of the rest
/// only the newest `max_count`.
pub fn expired(now: i64, versions: &[Aged], keep: Keep) -> Vec<String> {
    let mut unpinned: Vec<&Aged> = versions.iter().filter(|v| !v.pinned).collect();
    // Newest first: the first one seen in a slot is the one kept.
    unpinned.sort_by(|a, b| b.replaced_at.cmp(&a.replaced_at).then_with(|| b.id.cmp(&a.id)));
    let mut slots = std::collections::HashSet::new();
    let mut kept = 0usize;
    let mut gone = Vec::new();
    for v in unpinned {
        let age = (now - v.replaced_at).max(0);
        let (band, step) = BANDS
            .iter()
            .enumerate()
            .find(|(_, (from, to, _))| (*from..*to).contains(&age))
            .map(|(i, (_, _, step))| (i, *step))
            .expect("the bands cover every age");
        let fresh_slot = slots.insert((band, age / step));
        let too_old = keep.max_age > 0 && age >= keep.max_age;
        if fresh_slot && !too_old && kept < keep.max_count {
            kept += 1;
        } else {
            gone.push(v.id.clone());
        }
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn v(id: &str, replaced_at: i64, pinned: bool) -> Aged {
        Aged { id: id.into(), replaced_at, pinned }
    }

    fn keep_all() -> Keep {
        Keep { max_age: 0, max_count: usize::MAX }
    }

    /// In each slot of each band the newest version stays and the others go.
    #[test]
    fn each_slot_keeps_its_newest_version() {
        let now = 1_000_000;
        let versions = [
            v("a", now - 1, false),  // band 0, slot 0
            v("b", now - 1, false),  // slot 0 again, same time: the larger id is kept
            v("c", now - 3, false),  // slot 1
            v("d", now - 12, false), // band 1, slot 1
            v("e", now - 19, false), // slot 1 again, older
            v("f", now - 61, false), // band 2, slot 1
            v("g", now - 119, false),
            v("h", now - 2 * DAY - 5, false), // band 4, slot 2
            v("i", now - 2 * DAY - 6, false),
            v("j", now - 40 * DAY, false), // band 5
            v("k", now - 41 * DAY, false), // the same week slot (5 weeks)
        ];
        let mut gone = expired(now, &versions, keep_all());
        gone.sort();
        assert_eq!(gone, ["a", "e", "g", "i", "k"]);
    }

    /// Pinned versions stay whatever their age and take no slot; the age
    /// limit and the count apply to the unpinned only.
    #[test]
    fn pinned_versions_stay_and_limits_apply_to_the_rest() {
        let now = 100 * DAY;
        let versions = [v("p", now - 1, true), v("q", now - 1, false), v("old", now - 50 * DAY, true)];
        assert!(expired(now, &versions, Keep { max_age: 30 * DAY, max_count: 100 }).is_empty());
        let versions = [v("young", now - 5 * DAY, false), v("old", now - 31 * DAY, false)];
        assert_eq!(expired(now, &versions, Keep { max_age: 30 * DAY, max_count: 100 }), ["old"]);
        assert!(expired(now, &versions, Keep { max_age: 0, max_count: 100 }).is_empty(), "0: no age limit");
        let many: Vec<Aged> = (0..5).map(|i| v(&format!("d{i}"), now - (i + 1) * DAY - 1, false)).collect();
        let mut gone = expired(now, &many, Keep { max_age: 0, max_count: 3 });
        gone.sort();
        assert_eq!(gone, ["d3", "d4"], "the newest three stay");
    }

    /// The rule against a brute-force reading of it, on a synthetic clock:
    /// a version made every 7 s for a day, thinned every hour.
    #[test]
    fn thinning_on_a_synthetic_clock_matches_the_rule() {
        let start = 0;
        let mut live: Vec<Aged> = Vec::new();
        let mut t = start;
        for at in (start..start + DAY).step_by(7) {
            t = at;
            live.push(v(&format!("{t:08}"), t, false));
            if t % 3_600 < 7 {
                let gone = expired(t, &live, keep_all());
                live.retain(|x| !gone.contains(&x.id));
                // Every slot holds at most one version.
                let mut seen = std::collections::HashSet::new();
                for x in &live {
                    let age = t - x.replaced_at;
                    let (band, (_, _, step)) =
                        BANDS.iter().enumerate().find(|(_, (f, to, _))| (*f..*to).contains(&age)).unwrap();
                    assert!(seen.insert((band, age / step)), "two versions in one slot at {t}: {}", x.id);
                }
            }
        }
        let gone = expired(t, &live, keep_all());
        live.retain(|x| !gone.contains(&x.id));
        // At most one per slot: 5 + 5 + 59 + 23 slots in a day's bands.
        assert!(live.len() <= 92, "a day of versions thins to under a hundred: {}", live.len());
    }
}
