//! Runs the Python library's test suite (`sdk/python`, package `errand-client`) against
//! this build's `errand`, so that `cargo nextest run --workspace` covers it.
//!
//! The toolchain is prepared idempotently under the repository's `target/`: a virtual
//! environment at `target/sdk-python-venv` (made with `python3 -m venv` when absent), the
//! package installed editable with its test extras when it is missing or `pyproject.toml`
//! changed since the last install, then `python -m mypy --strict src` in `sdk/python`
//! (the type check fails the test with mypy's output before any test runs), then
//! `python -m pytest -q sdk/python/tests` with `ERRAND_BIN` naming this build's binary.
//! The suite's output is printed when it fails; a suite that runs longer than
//! [`SUITE_TIMEOUT`] is killed and fails.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The longest the whole pytest suite may run (it takes about a minute on a debug build).
const SUITE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The longest the type check may run (a few seconds with a warm cache, under a minute
/// with a cold one on a busy machine).
const TYPECHECK_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The repository's root (this crate is `crates/errand`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Runs a command to its end; panics with a clear message when it cannot start.
fn run(cmd: &mut Command, what: &str) -> Output {
    match cmd.output() {
        Ok(out) => out,
        Err(err) => panic!("{what}: could not run {cmd:?}: {err}"),
    }
}

/// Panics with the command's output unless it succeeded.
fn check(out: &Output, what: &str) {
    if !out.status.success() {
        panic!(
            "{what} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The venv's interpreter, creating the venv and installing the package as needed.
fn prepared_python(root: &Path) -> PathBuf {
    let venv = root.join("target").join("sdk-python-venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        let out = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .output();
        match out {
            Err(err) => panic!(
                "the Python SDK tests need `python3` (3.9 or newer, with the venv module) on \
                 PATH; it could not be run: {err}"
            ),
            Ok(out) => check(&out, "python3 -m venv target/sdk-python-venv"),
        }
    }
    let pyproject = fs::read(root.join("sdk/python/pyproject.toml"))
        .expect("sdk/python/pyproject.toml is readable");
    let stamp = venv.join("errand-client-pyproject.toml");
    let same_pyproject = fs::read(&stamp).ok().as_deref() == Some(&pyproject[..]);
    let importable = Command::new(&python)
        .args(["-c", "import errand_client, httpx, pytest, mypy"])
        .current_dir(root)
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if !same_pyproject || !importable {
        let out = run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(["-e", "sdk/python[test]"])
                .current_dir(root),
            "installing sdk/python",
        );
        check(&out, "pip install -e 'sdk/python[test]'");
        fs::write(&stamp, &pyproject).expect("the install stamp is writable");
    }
    python
}

/// Runs a command to its end or until `timeout`, when it is killed (and the test fails).
fn run_with_timeout(cmd: &mut Command, what: &str, timeout: Duration) -> Output {
    let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(err) => panic!("{what}: could not run {cmd:?}: {err}"),
    };
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(200)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let out = out_reader.join().unwrap_or_default();
                let err = err_reader.join().unwrap_or_default();
                panic!(
                    "{what}: still running after {}s, killed\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    timeout.as_secs(),
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&err)
                );
            }
            Err(err) => panic!("{what}: could not wait for {cmd:?}: {err}"),
        }
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// `python -m mypy --strict src` in `sdk/python`; panics with mypy's output unless the
/// library type-checks. Its cache is kept beside the venv, not in the source tree.
fn type_check(root: &Path, python: &Path) {
    let out = run_with_timeout(
        Command::new(python)
            .args(["-m", "mypy", "--strict", "src"])
            .env(
                "MYPY_CACHE_DIR",
                root.join("target")
                    .join("sdk-python-venv")
                    .join("mypy-cache"),
            )
            .current_dir(root.join("sdk/python")),
        "type-checking the Python SDK",
        TYPECHECK_TIMEOUT,
    );
    check(&out, "python -m mypy --strict src (in sdk/python)");
}

#[test]
fn python_sdk_suite_passes_against_this_build() {
    let root = repo_root();
    let python = prepared_python(&root);
    type_check(&root, &python);
    let out = run_with_timeout(
        Command::new(&python)
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "sdk/python/tests",
            ])
            .env("ERRAND_BIN", env!("CARGO_BIN_EXE_errand"))
            .current_dir(&root),
        "running the Python SDK tests",
        SUITE_TIMEOUT,
    );
    check(&out, "python -m pytest -q sdk/python/tests");
    println!("{}", String::from_utf8_lossy(&out.stdout));
}
