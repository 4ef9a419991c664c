//! The watched catalog on a real directory: folders added, edited and removed while it
//! runs are published without a restart; a jobs directory made after the start is found.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use errand_runner::catalog::{Catalog, CatalogSnapshot};
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(15);

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Waits (up to the deadline) for a published snapshot that satisfies `ok`.
async fn until(
    rx: &mut watch::Receiver<Arc<CatalogSnapshot>>,
    what: &str,
    ok: impl Fn(&CatalogSnapshot) -> bool,
) -> Arc<CatalogSnapshot> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let current = rx.borrow_and_update().clone();
        if ok(&current) {
            return current;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the catalog stopped before {what}"),
            Err(_) => panic!("no snapshot with {what} within {DEADLINE:?}: last {current:#?}"),
        }
    }
}

#[tokio::test]
async fn folders_added_edited_and_removed_are_reloaded() {
    let root = tempfile::tempdir().unwrap();
    let jobs = root.path().join("jobs");
    let (catalog, mut rx) = Catalog::watch(&jobs).await;
    assert!(rx.borrow().definitions.is_empty() && rx.borrow().problems.is_empty());

    // The jobs directory appears after the start, with a folder in it.
    write(&jobs.join("mailer/run.sh"), "echo sent\n");
    write(&jobs.join("mailer/job.toml"), "queue = \"mail\"\n");
    until(&mut rx, "mailer loaded", |s| {
        s.get("mailer").is_some_and(|d| d.queue.as_str() == "mail")
    })
    .await;

    // Added: a WebJobs folder, and an invalid folder next to the valid ones.
    write(&jobs.join("triggered/report/run.sh"), "");
    write(
        &jobs.join("triggered/report/settings.job"),
        "{\"is_singleton\": true}",
    );
    write(&jobs.join("broken/run.sh"), "");
    write(&jobs.join("broken/job.toml"), "concurrency = 0\n");
    let s = until(&mut rx, "report loaded and broken reported", |s| {
        s.get("report").is_some() && s.problems_of("broken").next().is_some()
    })
    .await;
    assert!(s.get("mailer").is_some());
    assert!(s.get("report").unwrap().singleton);

    // Edited.
    write(&jobs.join("mailer/job.toml"), "queue = \"mail-eu\"\n");
    write(&jobs.join("broken/job.toml"), "concurrency = 2\n");
    let s = until(&mut rx, "mailer edited and broken fixed", |s| {
        s.get("mailer")
            .is_some_and(|d| d.queue.as_str() == "mail-eu")
            && s.get("broken").is_some()
    })
    .await;
    assert!(s.problems.is_empty(), "{:#?}", s.problems);

    // Removed.
    std::fs::remove_dir_all(jobs.join("mailer")).unwrap();
    std::fs::remove_dir_all(jobs.join("triggered")).unwrap();
    let s = until(&mut rx, "mailer and report gone", |s| {
        s.get("mailer").is_none() && s.get("report").is_none()
    })
    .await;
    assert_eq!(s.definitions.keys().collect::<Vec<_>>(), vec!["broken"]);
    assert_eq!(catalog.snapshot(), s);
}

#[tokio::test]
async fn a_change_that_changes_nothing_publishes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let jobs = root.path().join("jobs");
    write(&jobs.join("a/run.sh"), "");
    write(&jobs.join("a/job.toml"), "");
    let (catalog, mut rx) = Catalog::watch(&jobs).await;
    assert!(rx.borrow_and_update().get("a").is_some());

    write(&jobs.join("README.md"), "notes\n");
    write(&jobs.join("a/run.sh"), "echo changed script\n");
    let after = catalog.reload_now().await;
    assert!(after.get("a").is_some());
    assert!(
        !rx.has_changed().unwrap(),
        "an identical snapshot was published"
    );

    write(&jobs.join("a/job.toml"), "concurrency = 3\n");
    let changed = catalog.reload_now().await;
    assert_eq!(changed.get("a").unwrap().concurrency, 3);
    assert!(rx.has_changed().unwrap());
}

#[tokio::test]
async fn a_jobs_dir_made_after_the_start_or_made_anew_is_watched() {
    let root = tempfile::tempdir().unwrap();
    let jobs = root.path().join("jobs");
    let (catalog, mut rx) = Catalog::watch(&jobs).await;
    // The watch loop has run and found no directory.
    assert!(catalog.reload_now().await.definitions.is_empty());

    write(&jobs.join("a/run.sh"), "");
    write(&jobs.join("a/job.toml"), "");
    until(&mut rx, "a loaded from a directory made later", |s| {
        s.get("a").is_some()
    })
    .await;

    // Removed and made again: the new directory is watched, not the dead one.
    std::fs::remove_dir_all(&jobs).unwrap();
    until(&mut rx, "a gone with its directory", |s| {
        s.get("a").is_none()
    })
    .await;
    std::fs::create_dir_all(&jobs).unwrap();
    // Once the new directory is seen (a reload that finds it), edits inside it must
    // arrive through the watcher: the periodic reload is 30 s away.
    catalog.reload_now().await;
    write(&jobs.join("b/run.sh"), "");
    write(&jobs.join("b/job.toml"), "");
    until(&mut rx, "b loaded in the new directory", |s| {
        s.get("b").is_some()
    })
    .await;
}
