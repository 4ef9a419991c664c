//! The dashboard's browser tests (`crates/errand/tests/dashboard/`, Node's test runner over
//! playwright-core), run against the `errand` binary cargo built, so
//! `cargo nextest run --workspace` covers them.
//!
//! They drive the system's headless Chromium (`/usr/bin/chromium`, or `ERRAND_CHROMIUM`);
//! no browser is ever downloaded. Without one the test skips and says so loudly, unless
//! `ERRAND_REQUIRE_BROWSER=1` (CI sets it) makes it fail. `npm ci` runs when
//! `node_modules` is missing or older than `package-lock.json`. Each test saves screenshots
//! under `target/ci-artifacts/dashboard/` (or `ERRAND_DASHBOARD_ARTIFACTS`). The suite has
//! 10 minutes (`ERRAND_DASHBOARD_TEST_TIMEOUT_SECS`); past it, it is killed with its
//! servers and browsers.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::node::{needs_install, require_node_20, run};

/// What the suite needs, said when something is missing.
const NEEDS: &str = "The dashboard's browser tests need Node.js 20+, npm, and Chromium \
    (apt-get install -y chromium)";

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/dashboard")
        .canonicalize()
        .expect("crates/errand/tests/dashboard exists")
}

#[test]
fn dashboard_in_a_browser() {
    let chromium =
        std::env::var("ERRAND_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
    if !Path::new(&chromium).exists() {
        let required = std::env::var("ERRAND_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "ERRAND_REQUIRE_BROWSER=1 but {chromium} does not exist. {NEEDS}"
        );
        eprintln!(
            "\n==== SKIPPED: the dashboard's browser tests need Chromium at {chromium} \
             (apt-get install -y chromium); set ERRAND_REQUIRE_BROWSER=1 to fail instead ====\n"
        );
        return;
    }
    let dir = suite_dir();
    require_node_20(&dir, NEEDS);
    // playwright-core downloads nothing by itself; this says so to any wrapper too.
    let envs_base = [("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")];
    if needs_install(&dir) {
        run(
            &dir,
            "npm",
            &["ci", "--no-audit", "--no-fund"],
            Duration::from_secs(600),
            &envs_base,
            NEEDS,
        );
    }
    let artifacts = std::env::var("ERRAND_DASHBOARD_ARTIFACTS").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/ci-artifacts/dashboard")
            .display()
            .to_string()
    });
    let suite_secs = std::env::var("ERRAND_DASHBOARD_TEST_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    run(
        &dir,
        "npm",
        &["test"],
        Duration::from_secs(suite_secs),
        &[
            envs_base[0],
            ("ERRAND_CHROMIUM", &chromium),
            ("ERRAND_DASHBOARD_ARTIFACTS", &artifacts),
        ],
        NEEDS,
    );
}
