//! Printing for people (aligned tables) and for scripts (`--json`).

use std::io::Write;

use serde::Serialize;

/// Standard output was closed by its reader (`errand jobs list | head -1`): the command
/// stops quietly and exits 0, as `cat` or `grep` would for the part that was read.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct StdoutClosed;

/// Writes text to standard output at once (flushed, for `--watch` and `events`). A closed
/// stdout is [`StdoutClosed`]; any other failure is an error naming standard output. Every
/// command prints through this (the [`outln!`](crate::outln) and [`out!`](crate::out) macros).
pub fn write(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

/// `println!` through [`write`]; returns from the enclosing function on failure (`?`).
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write(format_args!("\n"))? };
    ($($arg:tt)*) => { $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))? };
}

/// `print!` through [`write`]; returns from the enclosing function on failure (`?`).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*))? };
}

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    crate::outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows under headers with columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> anyhow::Result<()> {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        crate::outln!("{}", padded.join("  ").trim_end());
        Ok(())
    };
    line(headers.to_vec())?;
    for row in rows {
        line(row.iter().map(String::as_str).collect())?;
    }
    Ok(())
}

/// A timestamp as people read it, to the second.
pub fn when(t: Option<jiff::Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// A timestamp in the IANA zone `zone`, to the second, with its offset:
/// `2026-12-03 03:00:00 +01:00`. A zone this build does not know shows UTC (`+00:00`).
pub fn when_in(t: Option<jiff::Timestamp>, zone: &str) -> String {
    let Some(t) = t else { return "-".into() };
    let tz = jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC);
    t.to_zoned(tz).strftime("%Y-%m-%d %H:%M:%S %:z").to_string()
}

/// A span as people read it, coarse (`45s`, `3m 5s`, `2h 10m`, `4d 1h`).
pub fn span(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) if sec == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// How far `t` is from now: `in 5m 2s`, `3s ago`, `now`.
pub fn relative(t: jiff::Timestamp) -> String {
    let ms = t.as_millisecond() - jiff::Timestamp::now().as_millisecond();
    match ms {
        ms if ms.abs() < 1000 => "now".into(),
        ms if ms > 0 => format!("in {}", span(ms.unsigned_abs())),
        ms => format!("{} ago", span(ms.unsigned_abs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_in_their_zone_with_the_offset() {
        let t: jiff::Timestamp = "2026-12-03T02:00:00Z".parse().expect("time");
        assert_eq!(
            when_in(Some(t), "Europe/Paris"),
            "2026-12-03 03:00:00 +01:00"
        );
        assert_eq!(when_in(Some(t), "UTC"), "2026-12-03 02:00:00 +00:00");
        assert_eq!(when_in(None, "UTC"), "-");
        assert_eq!(span(65_000), "1m 5s");
        assert_eq!(span(3_600_000 * 26), "1d 2h");
    }
}
