//! A full disk under a real server: writes fail with 503 and keep nothing, acknowledged
//! writes stay, and the server takes writes again once space returns.
//!
//! The disk fills for real: the data directory sits on a small tmpfs that a filler file
//! fills up but for a few MB (SQLite sees `ENOSPC`, `SQLITE_FULL`). Small writes still fit
//! for a while; batches bigger than the writer's page cache spill mid-group and fail, and
//! SQLite then rolls back the whole group transaction by itself, the case the writer must
//! not turn into half-kept groups. Where mounting is not allowed, the server
//! runs with its SIGXFSZ ignored and a soft `RLIMIT_FSIZE` is lowered to the size its files
//! have plus the same few MB (writes past it fail with `EFBIG`, an I/O error to SQLite);
//! space "returns" when the limit is lifted. `ERRAND_TEST_DISK_FULL=rlimit` forces that way.
//!
//! What this test can and cannot detect. It proves the scenario happened: the burst goes on
//! until at least one 503 says its write was "rolled back with its group", the writer's
//! answer when it gave a whole group up, and it checks that nothing answered 503 is stored
//! and everything acknowledged is, during the squeeze and after a restart. It cannot prove
//! that the writer's guard is what kept the refused writes out: with the disk still full,
//! a write a broken writer let commit on its own (a `SAVEPOINT`/`RELEASE` pair in
//! autocommit after SQLite rolled the group back) mostly fails for want of space as well.
//! With the guard removed this test does fail, but only because no answer says a group was
//! given up any more (the burst times out), not because it sees a refused write stored. The
//! writer's unit test `a_real_sqlite_full_mid_group_keeps_nothing_of_the_group` (a real
//! `SQLITE_FULL` from `max_page_count`, with small writes after it that fit) is the one
//! that catches stray writes. How many small enqueues shared a group given up with a
//! failing big batch varies from run to run (none to dozens): printed, not required.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use errand_api::{BatchEnqueueRequest, EnqueueRequest, JobListQuery};
use errand_client::{Client, ClientError};
use errand_core::JobId;
use errand_testkit::{eventually, ServerProcess};
use serde_json::json;
use tokio::sync::Mutex;

use common::bin;

/// How the test takes the space away and gives it back.
enum Squeeze {
    /// A tmpfs mounted over `mount`; `filler` takes all its free space.
    Tmpfs { mount: PathBuf, filler: PathBuf },
    /// The server's `RLIMIT_FSIZE`, set with `prlimit` on its process.
    FileSizeLimit { data_dir: PathBuf },
}

impl Squeeze {
    /// Mounts a tmpfs at `at`, or explains why not.
    fn mount_tmpfs(at: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "errand-disk-full"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Squeeze::Tmpfs {
            mount: at.to_path_buf(),
            filler: at.join("filler"),
        })
    }

    /// Leaves the server `room` bytes to grow its files by.
    fn fill(&self, server: &ServerProcess, room: u64) {
        match self {
            Squeeze::Tmpfs { filler, .. } => {
                let mut f = std::fs::File::create(filler).expect("create the filler");
                let chunk = vec![0u8; 64 * 1024];
                while f.write_all(&chunk).is_ok() {}
                // Whatever part of a block is left, take it too.
                while f.write_all(&[0u8]).is_ok() {}
                let len = f.metadata().expect("filler size").len();
                f.set_len(len.saturating_sub(room)).expect("make room");
            }
            Squeeze::FileSizeLimit { data_dir } => {
                let largest = std::fs::read_dir(data_dir)
                    .expect("list the data directory")
                    .filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .max()
                    .unwrap_or(0);
                prlimit(server, &format!("--fsize={}:unlimited", largest + room));
            }
        }
    }

    /// Gives the space back.
    fn free(&self, server: &ServerProcess) {
        match self {
            Squeeze::Tmpfs { filler, .. } => {
                std::fs::remove_file(filler).expect("remove the filler");
            }
            Squeeze::FileSizeLimit { .. } => prlimit(server, "--fsize=unlimited:unlimited"),
        }
    }
}

impl Drop for Squeeze {
    fn drop(&mut self) {
        if let Squeeze::Tmpfs { mount, .. } = self {
            // Lazy: the killed server may still hold files open for a moment.
            let _ = Command::new("umount").arg("-l").arg(&*mount).status();
        }
    }
}

fn prlimit(server: &ServerProcess, limit: &str) {
    let pid = server.pid().expect("the server runs");
    let status = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(limit)
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit {limit} failed");
}

/// A shell that ignores SIGXFSZ and then becomes the server (same pid): with the signal
/// ignored, a write past `RLIMIT_FSIZE` fails with `EFBIG` instead of killing the process.
fn sigxfsz_ignoring_launcher(dir: &Path) -> PathBuf {
    let path = dir.join("errand-ignoring-sigxfsz");
    let script = format!(
        "#!/bin/sh\ntrap '' XFSZ\nexec '{}' \"$@\"\n",
        bin().display()
    );
    std::fs::write(&path, script).expect("write the launcher");
    let status = Command::new("chmod")
        .arg("+x")
        .arg(&path)
        .status()
        .expect("chmod");
    assert!(status.success());
    path
}

/// Every job in the store with the marker its producer put in the payload.
async fn stored_markers(client: &Client) -> HashMap<JobId, String> {
    common::all_jobs(client, JobListQuery::default())
        .await
        .into_iter()
        .map(|j| {
            let marker = j.payload["marker"].as_str().unwrap_or_default().to_string();
            (j.id, marker)
        })
        .collect()
}

/// What the producers were told.
#[derive(Default)]
struct Answers {
    acknowledged: HashMap<JobId, String>,
    refused: HashSet<String>,
    big_refused: usize,
    /// 503s that said the writer gave their whole group up, not just their own write.
    given_up: usize,
    /// Of those, small single enqueues: writes that fit and were refused only because a
    /// big write after them in the same group failed. Printed, not required: whether a
    /// small write lands before a failing big one in a group is up to timing.
    small_given_up: usize,
}

/// How the SQLite writer words the answer to every write of a group it gave up.
const GROUP_GIVEN_UP: &str = "rolled back with its group";

impl Answers {
    /// Records a 503, and whether it came from a group the writer gave up.
    fn refuse(&mut self, e: &ClientError, markers: Vec<String>) {
        assert_eq!(e.status(), Some(503), "a full disk answered {e}");
        if e.to_string().contains(GROUP_GIVEN_UP) {
            self.given_up += 1;
            if markers.len() == 1 {
                self.small_given_up += 1;
            }
        }
        self.refused.extend(markers);
    }
}

const PRODUCERS: usize = 64;

/// Payload padding: a few KB per job, so a group needs fresh pages.
const PAD: usize = 4 * 1024;

/// A batch bigger than the writer's page cache: SQLite must spill it into the WAL before
/// `COMMIT`, and a spill that fails rolls back the whole group transaction, including the
/// small writes grouped with it.
const BIG_BATCH: usize = 48;
const BIG_PAD: usize = 1_000_000;

/// Big batches refused before the test stops filling: each is a chance for small writes to
/// be grouped behind a spill that fails.
const BIG_REFUSALS: usize = 2;

/// Enqueues from many producers at once, small jobs and big batches, until `refusals`
/// requests were refused with 503, [`BIG_REFUSALS`] big batches were among them, and at
/// least one refusal came from a group the writer gave up as a whole.
async fn produce_until_refused(client: &Client, answers: &Arc<Mutex<Answers>>, refusals: usize) {
    let done = move |a: &Answers| {
        a.refused.len() >= refusals && a.big_refused >= BIG_REFUSALS && a.given_up >= 1
    };
    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let client = client.clone();
        let answers = answers.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                if done(&*answers.lock().await) {
                    return;
                }
                let marker = format!("{p}-{n}");
                let mut req = EnqueueRequest::new("squeezed");
                req.payload = Some(json!({"marker": marker, "pad": "x".repeat(PAD)}));
                match client.enqueue(&req).await {
                    Ok(job) => {
                        answers.lock().await.acknowledged.insert(job.id, marker);
                    }
                    Err(e) => answers.lock().await.refuse(&e, vec![marker]),
                }
            }
        }));
    }
    // Two of them: while one big batch keeps the writer busy, the other queues up with
    // small writes on both sides of it, and they all form the next group.
    for b in 0..2 {
        let client = client.clone();
        let answers = answers.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0.. {
                if done(&*answers.lock().await) {
                    return;
                }
                let markers: Vec<String> = (0..BIG_BATCH)
                    .map(|i| format!("big-{b}-{round}-{i}"))
                    .collect();
                let jobs = markers
                    .iter()
                    .map(|m| {
                        let mut req = EnqueueRequest::new("squeezed");
                        req.payload = Some(json!({"marker": m, "pad": "x".repeat(BIG_PAD)}));
                        req
                    })
                    .collect();
                match client.enqueue_batch(&BatchEnqueueRequest { jobs }).await {
                    Ok(out) => {
                        let mut a = answers.lock().await;
                        for (job, m) in out.jobs.iter().zip(markers) {
                            a.acknowledged.insert(job.id, m);
                        }
                    }
                    Err(e) => {
                        let mut a = answers.lock().await;
                        a.big_refused += 1;
                        a.refuse(&e, markers);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
}

/// Nothing refused is stored, and everything acknowledged is.
fn assert_exactly_the_acknowledged(answers: &Answers, stored: &HashMap<JobId, String>) {
    let lost: Vec<_> = answers
        .acknowledged
        .keys()
        .filter(|id| !stored.contains_key(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged jobs missing, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    let kept: Vec<_> = stored
        .values()
        .filter(|m| answers.refused.contains(*m))
        .collect();
    assert!(
        kept.is_empty(),
        "{} jobs whose enqueue was answered 503 were stored, e.g. {:?}",
        kept.len(),
        kept.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_keeps_nothing_refused_and_the_server_recovers() {
    let base = tempfile::tempdir().expect("temp dir");
    let tmpfs = if std::env::var("ERRAND_TEST_DISK_FULL").as_deref() == Ok("rlimit") {
        Err("ERRAND_TEST_DISK_FULL=rlimit".to_string())
    } else {
        Squeeze::mount_tmpfs(&base.path().join("disk"))
    };
    let (squeeze, data_dir, binary) = match tmpfs {
        Ok(s) => (s, base.path().join("disk").join("data"), bin()),
        Err(why) => {
            eprintln!(
                "NOTE: cannot mount a tmpfs ({why}); filling the disk with RLIMIT_FSIZE instead"
            );
            let data_dir = base.path().join("data");
            let squeeze = Squeeze::FileSizeLimit {
                data_dir: data_dir.clone(),
            };
            (squeeze, data_dir, sigxfsz_ignoring_launcher(base.path()))
        }
    };
    let mut server = ServerProcess::start_in(&binary, &data_dir, &[])
        .await
        .expect("start");
    let client = server.client().expect("client");
    let answers = Arc::new(Mutex::new(Answers::default()));

    // Some writes with room, then the disk fills under a running load.
    for n in 0..200 {
        let mut req = EnqueueRequest::new("squeezed");
        req.payload = Some(json!({"marker": format!("roomy-{n}"), "pad": "x".repeat(PAD)}));
        let job = client.enqueue(&req).await.expect("enqueue with room");
        answers
            .lock()
            .await
            .acknowledged
            .insert(job.id, format!("roomy-{n}"));
    }
    // Room for small writes, none for a group that spills.
    squeeze.fill(&server, 4 * 1024 * 1024);
    tokio::time::timeout(
        Duration::from_secs(120),
        produce_until_refused(&client, &answers, 300),
    )
    .await
    .expect("writes are refused once the disk is full, and a whole group is given up");
    let (given_up, small_given_up) = {
        let a = answers.lock().await;
        (a.given_up, a.small_given_up)
    };
    assert!(
        given_up >= 1,
        "no group was given up: the scenario never happened"
    );
    eprintln!(
        "{given_up} refusals came from groups the writer gave up, {small_given_up} of them \
         small enqueues refused with a failing big batch"
    );
    let during = stored_markers(&client).await;
    assert_exactly_the_acknowledged(&*answers.lock().await, &during);
    let health = common::http_client()
        .get(format!("{}/healthz", server.url()))
        .send()
        .await
        .expect("healthz");
    assert!(health.status().is_success(), "the process stays alive");

    // Space returns: writes succeed again without a restart.
    squeeze.free(&server);
    eventually(
        "an enqueue succeeds once space returns",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            let answers = answers.clone();
            async move {
                let mut req = EnqueueRequest::new("squeezed");
                req.payload = Some(json!({"marker": "recovered", "pad": "x"}));
                let job = client.enqueue(&req).await.ok()?;
                answers
                    .lock()
                    .await
                    .acknowledged
                    .insert(job.id, "recovered".into());
                Some(())
            }
        },
    )
    .await;
    for n in 0..500 {
        let mut req = EnqueueRequest::new("squeezed");
        req.payload = Some(json!({"marker": format!("after-{n}"), "pad": "x".repeat(PAD)}));
        let job = client
            .enqueue(&req)
            .await
            .expect("every enqueue succeeds after recovery");
        answers
            .lock()
            .await
            .acknowledged
            .insert(job.id, format!("after-{n}"));
    }

    // The file on disk says the same after a crash and a restart.
    server.restart().await.expect("restart");
    let after = stored_markers(&server.client().expect("client")).await;
    assert_exactly_the_acknowledged(&*answers.lock().await, &after);
    server.kill9().await;
    drop(squeeze);
}
