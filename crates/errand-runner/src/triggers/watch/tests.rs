//! Real temporary directories, real inotify events.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use super::*;

/// Records what it is handed; fails the first `fail_first` calls.
#[derive(Default)]
struct RecordingSink {
    seen: Mutex<Vec<SeenFile>>,
    gone: Mutex<Vec<String>>,
    fail_first: AtomicU32,
    calls: AtomicU32,
}

#[async_trait::async_trait]
impl WatchSink for RecordingSink {
    async fn file_seen(&self, file: SeenFile) -> Result<(), SinkError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("store unavailable".into());
        }
        self.seen.lock().unwrap().push(file);
        Ok(())
    }

    async fn file_gone(&self, _relative: &str, version_key: &str) -> Result<(), SinkError> {
        self.gone.lock().unwrap().push(version_key.to_string());
        Ok(())
    }
}

impl RecordingSink {
    fn relatives(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|f| f.relative.clone())
            .collect();
        names.sort();
        names
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits until at least `n` files were handed over (panics after 10 s).
    async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} files, saw {:?}",
                self.relatives()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

const DEBOUNCE: Duration = Duration::from_millis(200);

fn trigger(dir: &Path, glob: &str) -> WatchTrigger {
    WatchTrigger {
        dir: dir.to_path_buf(),
        glob: glob.into(),
        debounce: DEBOUNCE,
    }
}

fn start(dir: &Path, glob: &str, sink: &Arc<RecordingSink>) -> FileWatch {
    FileWatch::start(trigger(dir, glob), sink.clone()).unwrap()
}

/// Long enough for any stray event to have been debounced and handed over.
async fn quiet() {
    tokio::time::sleep(DEBOUNCE * 4).await;
}

#[tokio::test]
async fn files_present_at_start_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("early.csv"), "a,b\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "skip").unwrap();
    let sink = Arc::new(RecordingSink::default());
    let _watch = start(dir.path(), "*.csv", &sink);
    sink.wait_for(1).await;
    quiet().await;
    assert_eq!(sink.relatives(), ["early.csv"]);
    let seen = sink.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.size, 4);
    assert_eq!(seen.path, dir.path().join("early.csv"));
}

#[tokio::test]
async fn a_new_file_is_seen_with_its_size_and_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0.csv"), "").unwrap();
    let sink = Arc::new(RecordingSink::default());
    let _watch = start(dir.path(), "*.csv", &sink);
    // Once this is seen the start scan is over: what follows is seen through events.
    sink.wait_for(1).await;
    let path = dir.path().join("new.csv");
    std::fs::write(&path, "1,2,3\n").unwrap();
    sink.wait_for(2).await;
    let seen = sink.seen.lock().unwrap()[1].clone();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(seen.relative, "new.csv");
    assert_eq!(seen.size, 6);
    assert_eq!(
        seen.modified,
        jiff::Timestamp::try_from(meta.modified().unwrap()).unwrap()
    );
    assert_eq!(
        seen.version_key(),
        format!("6:{}:new.csv", seen.modified.as_nanosecond())
    );
}

#[tokio::test]
async fn a_file_written_in_chunks_is_seen_once_whole() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    // A long debounce against short pauses: a busy machine must not split the write.
    let debounce = Duration::from_secs(1);
    let _watch = FileWatch::start(
        WatchTrigger {
            debounce,
            ..trigger(dir.path(), "*.log")
        },
        sink.clone(),
    )
    .unwrap();
    let mut file = std::fs::File::create(dir.path().join("big.log")).unwrap();
    for _ in 0..5 {
        // The writer pauses for less than the debounce between chunks.
        file.write_all(&[b'x'; 1000]).unwrap();
        file.flush().unwrap();
        tokio::time::sleep(debounce / 20).await;
    }
    drop(file);
    sink.wait_for(1).await;
    quiet().await;
    let seen = sink.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].size, 5000);
}

#[tokio::test]
async fn the_glob_chooses_files_at_any_depth() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("old")).unwrap();
    std::fs::write(dir.path().join("old/a.json"), "{}").unwrap();
    let sink = Arc::new(RecordingSink::default());
    let _watch = start(dir.path(), "**/*.json", &sink);
    sink.wait_for(1).await;
    std::fs::write(dir.path().join("top.json"), "{}").unwrap();
    std::fs::write(dir.path().join("top.txt"), "no").unwrap();
    std::fs::create_dir_all(dir.path().join("new/deeper")).unwrap();
    std::fs::write(dir.path().join("new/deeper/b.json"), "{}").unwrap();
    sink.wait_for(3).await;
    quiet().await;
    assert_eq!(
        sink.relatives(),
        ["new/deeper/b.json", "old/a.json", "top.json"]
    );
}

#[tokio::test]
async fn a_top_level_glob_ignores_subdirectories() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/inner.csv"), "x").unwrap();
    let sink = Arc::new(RecordingSink::default());
    let _watch = start(dir.path(), "*.csv", &sink);
    std::fs::write(dir.path().join("sub/later.csv"), "x").unwrap();
    std::fs::write(dir.path().join("outer.csv"), "x").unwrap();
    sink.wait_for(1).await;
    quiet().await;
    assert_eq!(sink.relatives(), ["outer.csv"]);
}

#[tokio::test]
async fn a_star_does_not_cross_a_separator() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in/deep")).unwrap();
    std::fs::write(dir.path().join("in/deep/b.csv"), "x").unwrap();
    std::fs::write(dir.path().join("in/a.csv"), "x").unwrap();
    let sink = Arc::new(RecordingSink::default());
    let _watch = start(dir.path(), "in/*.csv", &sink);
    sink.wait_for(1).await;
    quiet().await;
    assert_eq!(sink.relatives(), ["in/a.csv"]);
}

#[tokio::test]
async fn a_rescan_does_not_hand_over_a_version_twice_but_a_change_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.csv");
    std::fs::write(&path, "v1").unwrap();
    let sink = Arc::new(RecordingSink::default());
    let watch = start(dir.path(), "*.csv", &sink);
    sink.wait_for(1).await;
    watch.rescan();
    watch.rescan();
    quiet().await;
    assert_eq!(sink.count(), 1);
    assert_eq!(sink.calls.load(Ordering::SeqCst), 1);

    std::fs::write(&path, "version 2").unwrap();
    sink.wait_for(2).await;
    quiet().await;
    let seen = sink.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].size, 9);
    assert_ne!(seen[0].version_key(), seen[1].version_key());

    std::fs::remove_file(&path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.gone.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "removal not reported");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*sink.gone.lock().unwrap(), [seen[1].version_key()]);
}

#[tokio::test]
async fn files_renamed_into_place_are_seen_once() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0.csv"), "").unwrap();
    let sink = Arc::new(RecordingSink::default());
    let _watch = start(dir.path(), "*.csv", &sink);
    // Once this is seen the start scan is over: what follows is seen through events.
    sink.wait_for(1).await;
    // Written under a name the glob skips, then renamed (the atomic-write pattern).
    std::fs::write(dir.path().join("a.csv.part"), "1,2").unwrap();
    std::fs::rename(dir.path().join("a.csv.part"), dir.path().join("a.csv")).unwrap();
    // Written elsewhere on the same file system, then moved in.
    std::fs::write(outside.path().join("b.csv"), "3,4,5").unwrap();
    std::fs::rename(outside.path().join("b.csv"), dir.path().join("b.csv")).unwrap();
    sink.wait_for(3).await;
    quiet().await;
    assert_eq!(sink.relatives(), ["0.csv", "a.csv", "b.csv"]);
}

#[tokio::test]
async fn a_failed_hand_over_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "x").unwrap();
    let sink = Arc::new(RecordingSink {
        fail_first: AtomicU32::new(2),
        ..Default::default()
    });
    let tuning = WatchTuning {
        retry: Duration::from_millis(50),
        ..Default::default()
    };
    let _watch = FileWatch::start_with(trigger(dir.path(), "*.csv"), sink.clone(), tuning).unwrap();
    sink.wait_for(1).await;
    quiet().await;
    assert_eq!(sink.relatives(), ["a.csv"]);
    assert_eq!(sink.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_dropped_watch_sees_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let watch = start(dir.path(), "*", &sink);
    std::fs::write(dir.path().join("one"), "x").unwrap();
    sink.wait_for(1).await;
    drop(watch);
    std::fs::write(dir.path().join("two"), "x").unwrap();
    quiet().await;
    assert_eq!(sink.relatives(), ["one"]);
}

#[tokio::test]
async fn bad_globs_and_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn WatchSink> = Arc::new(RecordingSink::default());
    assert!(matches!(
        FileWatch::start(trigger(dir.path(), "[unclosed"), sink.clone()),
        Err(WatchError::Glob { .. })
    ));
    assert!(matches!(
        FileWatch::start(trigger(&dir.path().join("missing"), "*"), sink.clone()),
        Err(WatchError::Directory { .. })
    ));
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    assert!(matches!(
        FileWatch::start(trigger(&file, "*"), sink),
        Err(WatchError::NotADirectory(_))
    ));
}

#[test]
fn starting_outside_a_runtime_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn WatchSink> = Arc::new(RecordingSink::default());
    assert!(matches!(
        FileWatch::start(trigger(dir.path(), "*"), sink),
        Err(WatchError::NoRuntime)
    ));
}
