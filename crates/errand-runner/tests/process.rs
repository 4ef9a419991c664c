//! The process runtime with real processes: bash and python3 scripts, real signals, real
//! pipes and FIFOs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use errand_core::{LogStream, NewLogLine};
use errand_runner::definition::ResourceLimits;
use errand_runner::process::{self, RunEnd, RunEvent, RunOutcome, RunSpec, SpawnError, StopReason};
use tokio::sync::mpsc;

/// A script file in `dir`, executable.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn spec(program: impl Into<PathBuf>, dir: &Path) -> RunSpec {
    RunSpec {
        program: program.into(),
        args: Vec::new(),
        working_dir: dir.to_path_buf(),
        env: vec![("PATH".into(), std::env::var("PATH").unwrap())],
        stdin: Vec::new(),
        limits: ResourceLimits::default(),
        user: None,
        timeout: None,
        stopping_wait_time: Duration::from_secs(5),
        limits_helper: None,
        max_line_bytes: 64 * 1024,
    }
}

/// Everything a run sent, with checkpoints answered `true` at once.
async fn run(spec: RunSpec) -> (RunOutcome, Vec<RunEvent>, u32) {
    let (tx, mut rx) = mpsc::channel(64);
    let running = process::start(spec, tx).await.unwrap();
    let pid = running.pid();
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            if let RunEvent::Checkpoint { value, saved } = event {
                saved.send(true).unwrap();
                events.push(RunEvent::Result(
                    serde_json::json!({ "checkpointed": value }),
                ));
            } else {
                events.push(event);
            }
        }
        events
    });
    let outcome = tokio::time::timeout(Duration::from_secs(60), running.wait())
        .await
        .expect("the run ends");
    // The channel closes once the run is over: every event is in.
    let events = tokio::time::timeout(Duration::from_secs(5), collector)
        .await
        .expect("the events channel closes after wait")
        .unwrap();
    (outcome, events, pid)
}

fn lines(events: &[RunEvent], stream: LogStream) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Log(NewLogLine {
                stream: s, line, ..
            }) if *s == stream => Some(line.as_str()),
            _ => None,
        })
        .collect()
}

/// Live (not zombie) processes whose process group is `pgid`, from /proc. A zombie is
/// dead: it waits for its parent (here PID 1, which may be slow to reap) to collect it.
fn live_members(pgid: u32) -> Vec<(u32, String)> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        // state, ppid, pgrp
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            live.push((pid, stat.clone()));
        }
    }
    live
}

/// Waits (up to 5 s) until no member of process group `pgid` is alive. A member the
/// stop sequence sent SIGKILL may still show for a moment on a busy machine before the
/// kernel ends it; one it missed would live on (the scripts' sleeps last 300 s).
async fn assert_group_gone(pgid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live_members(pgid).is_empty() {
        assert!(
            Instant::now() < deadline,
            "survivors: {:?}",
            live_members(pgid)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn success_gets_the_payload_and_both_streams() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "run.sh",
        "#!/bin/bash\npayload=$(cat)\necho \"got $payload\"\necho 'to stderr' >&2\necho done\n",
    );
    let mut spec = spec(program, dir.path());
    spec.stdin = br#"{"n": 1}"#.to_vec();
    let (outcome, events, _) = run(spec).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    assert_eq!(outcome.report.exit_code, Some(0));
    assert_eq!(outcome.report.signal, None);
    assert_eq!(
        lines(&events, LogStream::Stdout),
        vec![r#"got {"n": 1}"#, "done"]
    );
    assert_eq!(lines(&events, LogStream::Stderr), vec!["to stderr"]);
    let now = errand_core::time::system_now();
    for event in &events {
        if let RunEvent::Log(line) = event {
            assert!(line.at > now - 60_000 && line.at <= now, "{line:?}");
        }
    }
}

#[tokio::test]
async fn the_environment_is_exactly_the_spec_plus_the_control_variables() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec("/usr/bin/env", dir.path());
    spec.env.push(("ERRAND_JOB_ID".into(), "j1".into()));
    spec.env
        .push(("ERRAND_CONTROL".into(), "not this one".into()));
    let (outcome, events, _) = run(spec).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    let mut names: Vec<&str> = lines(&events, LogStream::Stdout)
        .into_iter()
        .map(|l| l.split_once('=').unwrap().0)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec![
            "ERRAND_CONTROL",
            "ERRAND_JOB_ID",
            "ERRAND_SHUTDOWN_FILE",
            "PATH"
        ]
    );
    let control = lines(&events, LogStream::Stdout)
        .into_iter()
        .find_map(|l| l.strip_prefix("ERRAND_CONTROL="))
        .unwrap()
        .to_string();
    assert_ne!(control, "not this one");
}

#[tokio::test]
async fn failure_exit_code_and_death_by_signal() {
    let dir = tempfile::tempdir().unwrap();
    let failing = script(dir.path(), "fail.sh", "#!/bin/bash\nexit 3\n");
    let (outcome, _, _) = run(spec(failing, dir.path())).await;
    assert_eq!(outcome.end, RunEnd::Exited(3));
    assert_eq!(outcome.report.exit_code, Some(3));

    let crashing = script(dir.path(), "crash.sh", "#!/bin/bash\nkill -SEGV $$\n");
    let (outcome, _, _) = run(spec(crashing, dir.path())).await;
    assert_eq!(outcome.end, RunEnd::Signalled(11));
    assert_eq!(outcome.report.signal, Some(11));
    assert_eq!(outcome.report.exit_code, None);
}

#[tokio::test]
async fn the_report_has_cpu_time_and_peak_memory() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "work.py",
        "#!/usr/bin/env python3\nimport time\nblock = bytearray(64 * 1024 * 1024)\n\
         for i in range(0, len(block), 4096): block[i] = 1\n\
         end = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n",
    );
    let (outcome, _, _) = run(spec(program, dir.path())).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    let report = outcome.report;
    assert!(report.cpu_ms >= 250, "{report:?}");
    assert!(report.max_rss_bytes >= 64 * 1024 * 1024, "{report:?}");
    assert!(report.duration_ms >= report.cpu_ms - 50, "{report:?}");
}

#[tokio::test]
async fn a_timeout_runs_the_stop_sequence_and_the_run_sees_the_shutdown_file() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "graceful.sh",
        "#!/bin/bash\n\
         trap 'test -e \"$ERRAND_SHUTDOWN_FILE\" && echo saw-shutdown-file; exit 0' TERM\n\
         echo started\nwhile true; do sleep 0.05; done\n",
    );
    let mut spec = spec(program, dir.path());
    spec.timeout = Some(Duration::from_millis(300));
    let begun = Instant::now();
    let (outcome, events, _) = run(spec).await;
    assert_eq!(outcome.end, RunEnd::TimedOut);
    assert_eq!(outcome.report.exit_code, Some(0), "it stopped by itself");
    assert!(begun.elapsed() < Duration::from_secs(4), "no SIGKILL wait");
    assert_eq!(
        lines(&events, LogStream::Stdout),
        vec!["started", "saw-shutdown-file"]
    );
}

#[tokio::test]
async fn a_run_that_ignores_sigterm_is_killed_after_the_stopping_wait() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "stubborn.sh",
        "#!/bin/bash\ntrap '' TERM\necho started\nwhile true; do sleep 0.05; done\n",
    );
    let mut spec = spec(program, dir.path());
    spec.timeout = Some(Duration::from_millis(200));
    spec.stopping_wait_time = Duration::from_millis(700);
    let begun = Instant::now();
    let (outcome, _, pid) = run(spec).await;
    let took = begun.elapsed();
    assert_eq!(outcome.end, RunEnd::TimedOut);
    assert_eq!(outcome.report.signal, Some(9));
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_group_gone(pid).await;
}

#[tokio::test]
async fn stop_ends_a_run_with_the_first_reason_given() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "long.sh",
        "#!/bin/bash\necho started\nexec sleep 300\n",
    );
    let (tx, mut rx) = mpsc::channel(8);
    let running = process::start(spec(program, dir.path()), tx).await.unwrap();
    // Started: its first line is out.
    assert!(matches!(rx.recv().await, Some(RunEvent::Log(_))));
    let stopper = running.stopper();
    stopper.stop(StopReason::Shutdown);
    stopper.stop(StopReason::Cancelled);
    let outcome = tokio::time::timeout(Duration::from_secs(10), running.wait())
        .await
        .unwrap();
    assert_eq!(outcome.end, RunEnd::Stopped(StopReason::Shutdown));
    assert_eq!(outcome.report.signal, Some(15));
    // Stopping a finished run does nothing.
    stopper.stop(StopReason::Removed);
}

#[tokio::test]
async fn no_grandchild_survives_a_run_that_exits() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "forks.sh",
        "#!/bin/bash\nsleep 300 &\nsleep 300 &\nbash -c 'sleep 300' &\n\
         echo \"pgid $(cut -d' ' -f5 /proc/$$/stat)\"\nexit 0\n",
    );
    let begun = Instant::now();
    let (outcome, events, pid) = run(spec(program, dir.path())).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    // Its own process group.
    assert_eq!(
        lines(&events, LogStream::Stdout),
        vec![format!("pgid {pid}")]
    );
    // The sleeps held stdout open: the run would not end before them had they lived.
    assert!(begun.elapsed() < Duration::from_secs(10));
    assert_group_gone(pid).await;
}

#[tokio::test]
async fn no_grandchild_survives_a_run_that_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "forks.sh",
        "#!/bin/bash\ntrap '' TERM\nsleep 300 &\nsleep 300 &\necho forked\nsleep 300\n",
    );
    let mut spec = spec(program, dir.path());
    spec.timeout = Some(Duration::from_millis(500));
    spec.stopping_wait_time = Duration::from_millis(300);
    let (outcome, events, pid) = run(spec).await;
    assert_eq!(outcome.end, RunEnd::TimedOut);
    assert_eq!(outcome.report.signal, Some(9));
    assert_eq!(lines(&events, LogStream::Stdout), vec!["forked"]);
    assert_group_gone(pid).await;
}

#[tokio::test]
async fn control_lines_become_events_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "control.sh",
        "#!/bin/bash\n\
         echo '{\"progress\": 50, \"message\": \"half\"}' > \"$ERRAND_CONTROL\"\n\
         echo '{\"checkpoint\": {\"page\": 3}}' > \"$ERRAND_CONTROL\"\n\
         echo 'not json' > \"$ERRAND_CONTROL\"\n\
         echo '{\"result\": {\"rows\": 10}}' > \"$ERRAND_CONTROL\"\n\
         echo '{\"fail\": \"bad input\", \"retry\": false}' > \"$ERRAND_CONTROL\"\n\
         printf '{\"message\": \"no newline\"}' > \"$ERRAND_CONTROL\"\n",
    );
    let (outcome, events, _) = run(spec(program, dir.path())).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    let control: Vec<String> = events
        .iter()
        .filter(|e| !matches!(e, RunEvent::Log(_)))
        .map(|e| format!("{e:?}"))
        .collect();
    assert_eq!(control.len(), 6, "{control:#?}");
    assert!(control[0].contains("Progress(Progress { percent: Some(50.0), message: Some(\"half\")"));
    assert!(control[1].contains("checkpointed"), "{}", control[1]);
    assert!(
        control[2].starts_with("BadControlLine(\"bad control line: not JSON"),
        "{}",
        control[2]
    );
    assert!(control[2].contains("not json"));
    assert!(control[3].contains("rows"), "{}", control[3]);
    assert_eq!(control[4], "FailNoRetry(\"bad input\")");
    assert!(control[5].contains("no newline"), "{}", control[5]);
}

#[tokio::test]
async fn a_checkpoint_is_saved_before_the_next_control_line_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // Python keeps the FIFO open for all its lines.
    let program = script(
        dir.path(),
        "checkpoints.py",
        "#!/usr/bin/env python3\nimport os, json\n\
         with open(os.environ['ERRAND_CONTROL'], 'w') as c:\n\
         \x20   for page in range(3):\n\
         \x20       c.write(json.dumps({'checkpoint': {'page': page}}) + '\\n'); c.flush()\n\
         \x20   c.write(json.dumps({'progress': 100}) + '\\n')\n",
    );
    let (tx, mut rx) = mpsc::channel(8);
    let running = process::start(spec(program, dir.path()), tx).await.unwrap();
    let mut seen = Vec::new();
    while let Some(event) = rx.recv().await {
        match event {
            RunEvent::Checkpoint { value, saved } => {
                // A slow store: meanwhile the next line stays unread.
                tokio::time::sleep(Duration::from_millis(100)).await;
                assert!(
                    matches!(rx.try_recv(), Err(mpsc::error::TryRecvError::Empty)),
                    "no control line is read while a checkpoint is unsaved"
                );
                saved.send(true).unwrap();
                seen.push(value["page"].as_i64().unwrap());
            }
            RunEvent::Progress(p) => {
                assert_eq!(p.percent, Some(100.0));
                seen.push(100);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, vec![0, 1, 2, 100]);
    assert_eq!(running.wait().await.end, RunEnd::Exited(0));
}

#[tokio::test]
async fn the_private_directory_is_0700_and_removed_after_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "where.sh",
        "#!/bin/bash\nd=$(dirname \"$ERRAND_CONTROL\")\necho \"$d\"\nstat -c %a \"$d\"\n\
         test -p \"$ERRAND_CONTROL\" && echo fifo\n\
         test -e \"$ERRAND_SHUTDOWN_FILE\" || echo no-shutdown-file\n",
    );
    let (outcome, events, _) = run(spec(program, dir.path())).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    let out = lines(&events, LogStream::Stdout);
    assert_eq!(out[1..], ["700", "fifo", "no-shutdown-file"]);
    assert!(!Path::new(out[0]).exists(), "{} is removed", out[0]);
}

#[tokio::test]
async fn long_lines_are_split_and_invalid_utf8_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "long.py",
        "#!/usr/bin/env python3\nimport sys\n\
         sys.stdout.write('x' * 10000 + '\\n')\n\
         sys.stdout.flush()\nsys.stdout.buffer.write(b'bad \\xff byte\\r\\nlast')\n",
    );
    let mut spec = spec(program, dir.path());
    spec.max_line_bytes = 4096;
    let (_, events, _) = run(spec).await;
    let out = lines(&events, LogStream::Stdout);
    let lengths: Vec<usize> = out.iter().map(|l| l.len()).collect();
    assert_eq!(lengths[..3], [4096, 4096, 1808]);
    assert_eq!(out[3..], ["bad \u{fffd} byte", "last"]);
}

#[tokio::test]
async fn a_hundred_thousand_lines_all_arrive_in_order_and_fast() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "print.py",
        "#!/usr/bin/env python3\nfor i in range(100000): print(f'line {i}')\n",
    );
    let begun = Instant::now();
    let (outcome, events, _) = run(spec(program, dir.path())).await;
    let took = begun.elapsed();
    assert_eq!(outcome.end, RunEnd::Exited(0));
    let out = lines(&events, LogStream::Stdout);
    assert_eq!(out.len(), 100_000);
    for (i, line) in out.iter().enumerate() {
        assert_eq!(*line, format!("line {i}"));
    }
    eprintln!("100,000 lines in {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn a_run_whose_events_nobody_reads_still_ends() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "print.py",
        "#!/usr/bin/env python3\nimport os\nfor i in range(50000): print(f'line {i}')\n\
         open(os.environ['ERRAND_CONTROL'], 'w').write('{\"checkpoint\": 1}\\n')\n",
    );
    let (tx, rx) = mpsc::channel(4);
    drop(rx);
    let running = process::start(spec(program, dir.path()), tx).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), running.wait())
        .await
        .unwrap();
    assert_eq!(outcome.end, RunEnd::Exited(0));
}

#[tokio::test]
async fn spawn_failures_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::channel(4);

    let missing = dir.path().join("nope.sh");
    let err = process::start(spec(&missing, dir.path()), tx.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SpawnError::ProgramNotFound { path } if *path == missing),
        "{err}"
    );
    assert!(err.to_string().contains("nope.sh"));

    let plain = dir.path().join("plain.sh");
    std::fs::write(&plain, "#!/bin/bash\n").unwrap();
    let err = process::start(spec(&plain, dir.path()), tx.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SpawnError::NotExecutable { path, .. } if *path == plain),
        "{err}"
    );

    let bad_interpreter = script(dir.path(), "bad.sh", "#!/no/such/interpreter\n");
    let err = process::start(spec(&bad_interpreter, dir.path()), tx.clone())
        .await
        .unwrap_err();
    assert!(matches!(&err, SpawnError::ProgramNotFound { .. }), "{err}");

    let good = script(dir.path(), "ok.sh", "#!/bin/bash\n");
    let gone = dir.path().join("gone");
    let err = process::start(spec(&good, &gone), tx.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SpawnError::WorkingDirMissing { path } if *path == gone),
        "{err}"
    );
    let err = process::start(spec(&good, &good), tx.clone())
        .await
        .unwrap_err();
    assert!(matches!(&err, SpawnError::BadWorkingDir { .. }), "{err}");

    let mut limited = spec(&good, dir.path());
    limited.limits.open_files = Some(10);
    let err = process::start(limited, tx.clone()).await.unwrap_err();
    assert!(matches!(err, SpawnError::NoLimitsHelper), "{err}");

    let mut other_user = spec(&good, dir.path());
    other_user.user = Some("no-such-user-errand".into());
    let err = process::start(other_user, tx).await.unwrap_err();
    assert!(matches!(err, SpawnError::UnknownUser(_)), "{err}");
}

#[tokio::test]
async fn the_sigchld_watch_sees_an_exit_without_reaping_it() {
    let mut child = std::process::Command::new("sleep")
        .arg("0.2")
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut watch = process::usage::ExitWatch::with_sigchld(child.id()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), watch.exited())
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    // Still there to reap, with its status.
    let report = process::usage::reap(&mut child, started).await;
    assert_eq!(report.exit_code, Some(0));
}

#[test]
fn a_run_dies_with_the_runtime_that_supervised_it() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "forever.sh",
        "#!/bin/bash\ntrap '' TERM\nsleep 300 &\necho started\nwhile true; do sleep 0.05; done\n",
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pid = runtime.block_on(async {
        let (tx, mut rx) = mpsc::channel(8);
        let running = process::start(spec(program, dir.path()), tx).await.unwrap();
        assert!(matches!(rx.recv().await, Some(RunEvent::Log(_))));
        running.pid()
    });
    assert!(!live_members(pid).is_empty());
    drop(runtime);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live_members(pid).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", live_members(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_reader_that_falls_behind_slows_the_run_down_instead_of_buffering() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("finished");
    let program = script(
        dir.path(),
        "flood.py",
        "#!/usr/bin/env python3\nimport sys\nfor i in range(100000): print(i)\n\
         open(sys.argv[1], 'w').close()\n",
    );
    let mut spec = spec(program, dir.path());
    spec.args = vec![marker.to_string_lossy().into_owned()];
    let (tx, mut rx) = mpsc::channel(16);
    let running = process::start(spec, tx).await.unwrap();
    // Nobody reads for a while: the run must be held up by its full pipe (unhindered, it
    // prints 100,000 short lines in well under this).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!marker.exists(), "the run was not held up");
    let mut count = 0;
    while let Some(event) = rx.recv().await {
        if let RunEvent::Log(_) = event {
            count += 1;
        }
    }
    assert_eq!(count, 100_000);
    assert_eq!(running.wait().await.end, RunEnd::Exited(0));
    assert!(marker.exists());
}

#[tokio::test]
async fn the_private_directory_goes_even_when_the_run_left_files_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "litter.sh",
        "#!/bin/bash\nd=$(dirname \"$ERRAND_CONTROL\")\necho \"$d\"\nmkdir \"$d/sub\"\ntouch \"$d/sub/f\"\n",
    );
    let (outcome, events, _) = run(spec(program, dir.path())).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    let out = lines(&events, LogStream::Stdout);
    assert!(!Path::new(out[0]).exists(), "{} is removed", out[0]);
}
