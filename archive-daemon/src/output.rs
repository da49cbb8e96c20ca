//! Printing results for people and for programs.
//!
//! Commands print through [`stdout`] and [`stderr`] (and the `outln!` / `errln!` macros), not
//! the process's streams directly: when a command runs inside `archive serve` on behalf of a
//! forwarded invocation, its output goes back over the control socket instead.

use std::cell::RefCell;
use std::io::{self, Write};

use serde::Serialize;

/// Where a forwarded command's output goes: one writer per stream.
pub(crate) trait Sink {
    /// Writes `bytes` to the forwarded stdout (`err == false`) or stderr.
    fn write(&mut self, err: bool, bytes: &[u8]) -> io::Result<()>;
}

thread_local! {
    static SINK: RefCell<Option<Box<dyn Sink>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's output going to `sink`.
pub(crate) fn with_sink<T>(sink: Box<dyn Sink>, f: impl FnOnce() -> T) -> T {
    SINK.with(|s| *s.borrow_mut() = Some(sink));
    let out = f();
    SINK.with(|s| *s.borrow_mut() = None);
    out
}

/// True when this thread's output is forwarded (no terminal to draw progress bars on).
pub(crate) fn is_forwarded() -> bool {
    SINK.with(|s| s.borrow().is_some())
}

/// The command's standard output.
pub(crate) struct Out {
    err: bool,
}

pub(crate) fn stdout() -> Out {
    Out { err: false }
}

pub(crate) fn stderr() -> Out {
    Out { err: true }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let forwarded = SINK.with(|s| match s.borrow_mut().as_mut() {
            Some(sink) => Some(sink.write(self.err, buf)),
            None => None,
        });
        match forwarded {
            Some(r) => r.map(|()| buf.len()),
            None if self.err => io::stderr().write(buf),
            None => io::stdout().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.err {
            io::stderr().flush()
        } else {
            io::stdout().flush()
        }
    }
}

/// `println!` for commands.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!($crate::output::stdout(), $($t)*)?;
    }};
}

/// `eprintln!` for commands.
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($crate::output::stderr(), $($t)*);
    }};
}
pub(crate) use {errln, outln};

/// Prints `value` as one line of JSON on stdout.
pub(crate) fn print_json(value: &impl Serialize) -> io::Result<()> {
    let mut out = stdout();
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    out.write_all(&line)
}

/// Prints a command's error the way `archive` does: `archive: error: ...` with its causes.
pub(crate) fn errln_error(err: &anyhow::Error) {
    let _ = writeln!(stderr(), "archive: error: {err:#}");
}

/// A name as printed for people: control characters (which could forge lines or send terminal
/// escapes) are escaped (`\n`, `\u{1b}`); everything else is shown as it is.
pub(crate) fn shown(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Sizes for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A timestamp for people: UTC date and time.
pub(crate) fn human_time(t: archive_core::Timestamp) -> String {
    let secs = t.unix_millis() / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_dates() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
