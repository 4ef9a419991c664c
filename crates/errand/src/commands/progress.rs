//! Progress bars for long operations (export, import, requeues, `enqueue --file`), drawn on
//! stderr only when stderr is a terminal: piped or redirected output gets no escape codes.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where bars draw: stderr on a terminal, nowhere otherwise.
fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// A bar counting items up to `len`, or a running count when the total is unknown.
pub fn count(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(len, target());
    bar.set_style(match len {
        Some(_) => {
            style("{spinner} {msg} {wide_bar} {human_pos}/{human_len} ({per_sec}, {eta} left)")
        }
        None => style("{spinner} {msg} {human_pos} ({per_sec})"),
    });
    bar.set_message(what.to_string());
    bar
}

/// A bar over `len` bytes of input, its message updated by the caller (e.g. a count).
pub fn bytes(len: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(len, target());
    bar.set_style(match len {
        Some(_) => style("{spinner} {msg} {wide_bar} {bytes}/{total_bytes} ({eta} left)"),
        None => style("{spinner} {msg} {bytes}"),
    });
    bar
}

/// A spinner for one long call whose progress cannot be counted.
pub fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target());
    bar.set_style(style("{spinner} {msg} ({elapsed})"));
    bar.set_message(what.to_string());
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(100));
    }
    bar
}
