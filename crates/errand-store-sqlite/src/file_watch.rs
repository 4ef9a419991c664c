//! Whether the files the store was opened on are still the files at their paths.
//!
//! SQLite holds its files open by descriptor. Delete the data directory, or move another
//! file onto the store's path, and every commit still succeeds: it lands in an unlinked
//! inode (or in the file moved aside) that the next start never opens, so every job
//! acknowledged from then on is lost, and the next start creates a new empty store. The
//! writer therefore asks [`FileWatch::check`] before each group's `COMMIT`: one `stat` of
//! the database file and one of its `-wal`, compared by device and inode with what they
//! were at open.
//!
//! Once a check fails, or the file could only be opened read-only, the store is broken for
//! good: every later write and readiness answers `Unavailable` with the reason, without
//! looking again. Nothing short of a restart against the real data can mend it (the
//! connections point at the old inode), so a file put back meanwhile does not count.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use errand_store::StoreError;

/// A file's identity on the machine: it changes when the path is made to name another
/// file, whatever that file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    device: u64,
    inode: u64,
}

impl FileId {
    /// Asks only for the file's device and inode, never its times. On Linux 6.13 and later
    /// a `stat` that reads a file's change time marks it "queried", and the file's next
    /// write then stamps a fresh fine-grained time; on this machine's ext4 (which runs
    /// without a journal) `fdatasync` then writes that inode update out too: one more
    /// synchronous disk write, and one more wait, in every commit (measured: 40 µs of CPU
    /// and 70 µs of wall time more per commit). `std::fs::metadata` asks for every field,
    /// so on Linux this asks `statx` for the inode alone, and falls back to `std` where
    /// `statx` is missing or refused (old kernels, old container profiles) or answers
    /// without the inode.
    #[cfg(target_os = "linux")]
    fn of(path: &Path) -> std::io::Result<Self> {
        use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
        match statx(CWD, path, AtFlags::empty(), StatxFlags::INO) {
            Ok(st) if StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::INO) => {
                Ok(Self {
                    device: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
                    inode: st.stx_ino,
                })
            }
            Ok(_) | Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
                Self::of_metadata(path)
            }
            Err(e) => Err(e.into()),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn of(path: &Path) -> std::io::Result<Self> {
        Self::of_metadata(path)
    }

    fn of_metadata(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self::from_metadata(&meta))
    }

    #[cfg(unix)]
    fn from_metadata(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            device: meta.dev(),
            inode: meta.ino(),
        }
    }

    /// Elsewhere only a file gone is seen, not one replaced.
    #[cfg(not(unix))]
    fn from_metadata(_: &std::fs::Metadata) -> Self {
        Self {
            device: 0,
            inode: 0,
        }
    }
}

/// The store's files as opened, and why the store is broken once it is.
#[derive(Debug)]
pub(crate) struct FileWatch {
    /// The database file and, when it existed at open, its `-wal`.
    files: Vec<(PathBuf, FileId)>,
    broken: OnceLock<String>,
}

impl FileWatch {
    /// Records the identity of `db` and of its `-wal`, as they are now. Call it once the
    /// writer has opened the store in WAL mode: SQLite keeps the `-wal` from then until the
    /// last connection closes.
    ///
    /// # Errors
    /// `Unavailable` when `db` cannot be looked at.
    pub(crate) fn record(db: &Path) -> Result<Self, StoreError> {
        let id = FileId::of(db)
            .map_err(|e| StoreError::Unavailable(format!("cannot stat {}: {e}", db.display())))?;
        let mut files = vec![(db.to_path_buf(), id)];
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        if let Ok(id) = FileId::of(&wal) {
            files.push((wal, id));
        }
        Ok(Self {
            files,
            broken: OnceLock::new(),
        })
    }

    /// The database file watched.
    fn db(&self) -> &Path {
        &self.files[0].0
    }

    /// Marks the store broken for the rest of the process and says so at error level, once.
    pub(crate) fn mark_broken(&self, reason: String) {
        let mut first = false;
        self.broken.get_or_init(|| {
            first = true;
            reason
        });
        if first {
            tracing::error!(
                store = %self.db().display(),
                reason = self.broken.get().map(String::as_str).unwrap_or_default(),
                "THE STORE CANNOT TAKE WRITES: errand refuses every write and fails readiness \
                 until it is restarted against the real data"
            );
        }
    }

    /// `Unavailable` with the reason once the store is broken; asks nothing of the disk.
    pub(crate) fn refusal(&self) -> Result<(), StoreError> {
        match self.broken.get() {
            Some(reason) => Err(StoreError::Unavailable(reason.clone())),
            None => Ok(()),
        }
    }

    /// Whether every watched path still names the file opened; the first time one does
    /// not, the store becomes broken.
    ///
    /// # Errors
    /// `Unavailable` saying what happened to the file, now and on every later call.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        self.refusal()?;
        for (path, opened) in &self.files {
            let what = match FileId::of(path) {
                Ok(now) if now == *opened => continue,
                Ok(_) => "was replaced by another file",
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    "is gone (deleted, or its directory removed)"
                }
                // Not knowing is not "gone": a failing `stat` (EIO, ENOMEM) must not
                // break a store whose file may be fine; the write fails this once.
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot check {}: {e}",
                        path.display()
                    )))
                }
            };
            self.mark_broken(format!(
                "{} {what} since errand opened it: a write now would land where no restart \
                 finds it. Restore the data directory or point errand at the real store, \
                 then restart errand. If the file was deleted, copy it out of this process \
                 before restarting (/proc/{}/fd holds it while errand runs; see \
                 docs/operations.md): a restart lets it go",
                path.display(),
                std::process::id()
            ));
            return self.refusal();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched() -> (tempfile::TempDir, PathBuf, FileWatch) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("s.sqlite3");
        std::fs::write(&db, b"db").expect("db");
        std::fs::write(dir.path().join("s.sqlite3-wal"), b"wal").expect("wal");
        let watch = FileWatch::record(&db).expect("record");
        (dir, db, watch)
    }

    fn assert_broken(watch: &FileWatch, says: &str) {
        let e = watch.check().expect_err("broken");
        assert!(
            matches!(&e, StoreError::Unavailable(m) if m.contains(says)),
            "{e:?}"
        );
        assert!(watch.refusal().is_err(), "broken stays broken");
    }

    #[test]
    fn untouched_files_pass() {
        let (_dir, db, watch) = watched();
        std::fs::write(&db, b"rewritten in place").expect("write");
        watch.check().expect("the same file");
        watch.refusal().expect("not broken");
    }

    #[test]
    fn a_deleted_file_breaks_the_store_for_good() {
        let (_dir, db, watch) = watched();
        let kept = db.with_extension("kept");
        std::fs::rename(&db, &kept).expect("move aside");
        assert_broken(&watch, "is gone");
        // Putting the very file back does not mend it: the process must restart.
        std::fs::rename(&kept, &db).expect("move back");
        assert_broken(&watch, "is gone");
    }

    #[test]
    fn a_replaced_wal_breaks_the_store() {
        let (dir, _db, watch) = watched();
        let other = dir.path().join("other");
        std::fs::write(&other, b"another wal").expect("other");
        std::fs::rename(&other, dir.path().join("s.sqlite3-wal")).expect("replace");
        assert_broken(&watch, "was replaced by another file");
    }

    #[test]
    fn marked_read_only_refuses_without_looking() {
        let (_dir, _db, watch) = watched();
        watch.mark_broken("opened read-only".into());
        assert_broken(&watch, "opened read-only");
    }

    /// Times this thread has slept of its own accord (waiting on a lock or a disk).
    #[cfg(target_os = "linux")]
    fn voluntary_switches() -> u64 {
        let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("voluntary_ctxt_switches")
    }

    /// On Linux 6.13 and later a `stat` that reads a file's times makes the next write
    /// stamp a fresh time, which `fdatasync` (on ext4 without a journal, as on the machine
    /// this was measured on) writes as an inode update of its own: one more wait in every
    /// commit. The check must not read them, so a commit after a check waits no more often
    /// than one after no look at all, where a commit after a full `stat` waits once more.
    /// The three kinds of commit alternate in short blocks so that a slower moment of the
    /// disk or of other tests counts against each alike. Where a full `stat` adds no wait
    /// (older kernels, tmpfs, journalled file systems) there is nothing to tell the check
    /// apart from, and the test says so on stderr and passes.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_check_adds_no_disk_wait_to_the_next_commit() {
        use std::os::unix::fs::FileExt;
        const BLOCKS: u32 = 10;
        const COMMITS: u32 = 20;
        let (_dir, db, watch) = watched();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .expect("open");
        let page = [7u8; 4096];
        file.write_all_at(&page, 0).expect("write");
        file.sync_all().expect("sync");
        let waits = |look: &dyn Fn()| {
            let before = voluntary_switches();
            for _ in 0..COMMITS {
                file.write_all_at(&page, 0).expect("write");
                look();
                file.sync_data().expect("fdatasync");
            }
            voluntary_switches() - before
        };
        let (mut unlooked, mut stat, mut checked) = (0, 0, 0);
        for _ in 0..BLOCKS {
            unlooked += waits(&|| {});
            stat += waits(&|| {
                std::fs::metadata(&db).expect("stat");
            });
            checked += waits(&|| watch.check().expect("the same file"));
        }
        let per_commit = |n: u64| n as f64 / f64::from(BLOCKS * COMMITS);
        let (unlooked, stat, checked) =
            (per_commit(unlooked), per_commit(stat), per_commit(checked));
        if stat - unlooked < 0.5 {
            eprintln!(
                "SKIPPED: on this kernel and file system a full stat adds no wait to a commit \
                 ({unlooked:.2} waits per commit without a look, {stat:.2} after a stat), so \
                 there is nothing to tell the check apart from"
            );
            return;
        }
        assert!(
            checked - unlooked < 0.5,
            "a commit after a check waits {checked:.2} times, {unlooked:.2} without a look \
             and {stat:.2} after a full stat: the check reads the file's times"
        );
    }
}
