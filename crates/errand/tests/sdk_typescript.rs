//! Runs the TypeScript library's test suite (`sdk/typescript`, `@errand/client`) against the
//! `errand` binary cargo built, so `cargo nextest run --workspace` covers it.
//!
//! Prepares the toolchain idempotently: `npm ci` when `sdk/typescript/node_modules` is
//! missing or older than `package-lock.json`, then removes `dist` and `dist-test` (tsc never
//! deletes what a removed source compiled to, so a deleted test would still run) and runs
//! `npm run build` (tsc) and `npm test` (Node's test runner over the compiled tests, each
//! starting real `errand serve` processes with `ERRAND_BIN` set to this build). Every step
//! has a timeout (the suite 15 minutes, `ERRAND_SDK_TEST_TIMEOUT_SECS` to change it); a step
//! that overruns is killed with its whole process group. Needs Node.js 20 or later and npm
//! on the `PATH`; without them the test fails and says so.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::node::{needs_install, require_node_20};

/// What the suite needs, said when something is missing.
const NEEDS: &str = "The TypeScript SDK tests need Node.js 20+ and npm on the PATH";

/// `sdk/typescript` in this repository.
fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../sdk/typescript")
        .canonicalize()
        .expect("sdk/typescript exists")
}

/// Runs a step of the suite in the SDK folder (see [`common::node::run`]).
fn run(dir: &Path, program: &str, args: &[&str], limit: Duration) -> Output {
    common::node::run(dir, program, args, limit, &[], NEEDS)
}

#[test]
fn typescript_sdk_suite() {
    let dir = sdk_dir();
    require_node_20(&dir, NEEDS);
    if needs_install(&dir) {
        run(
            &dir,
            "npm",
            &["ci", "--no-audit", "--no-fund"],
            Duration::from_secs(600),
        );
    }
    for out in ["dist", "dist-test"] {
        let path = dir.join(out);
        // A symlink (an out-of-tree build folder) goes as a link; a folder with its contents.
        let removed = if path.is_symlink() {
            std::fs::remove_file(&path)
        } else {
            std::fs::remove_dir_all(&path)
        };
        if let Err(e) = removed {
            assert!(
                e.kind() == std::io::ErrorKind::NotFound,
                "could not remove {}: {e}",
                path.display()
            );
        }
    }
    run(&dir, "npm", &["run", "build"], Duration::from_secs(300));
    let suite_secs = std::env::var("ERRAND_SDK_TEST_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(900);
    run(&dir, "npm", &["test"], Duration::from_secs(suite_secs));
}
