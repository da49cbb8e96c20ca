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

/// A JSON array printed an element at a time (one line, as [`print_json`] prints a `Vec`), for
/// listings too long to hold.
pub(crate) struct JsonArray {
    out: io::BufWriter<Out>,
    first: bool,
}

impl JsonArray {
    pub(crate) fn start() -> io::Result<Self> {
        let mut out = io::BufWriter::new(stdout());
        out.write_all(b"[")?;
        Ok(JsonArray { out, first: true })
    }

    pub(crate) fn push(&mut self, value: &impl Serialize) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, value)?;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.out.write_all(b"]\n")?;
        self.out.flush()
    }
}

/// Prints a command's error the way `archive` does: `archive: error: ...` with its causes.
pub(crate) fn errln_error(err: &anyhow::Error) {
    let _ = writeln!(stderr(), "archive: error: {err:#}");
    if let Some(hint) = crate::hints::hint(err) {
        let _ = writeln!(stderr(), "archive: hint: {hint}");
    }
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

/// Sizes for people: `512 B`, `1.50 KiB`, `3.00 GiB` (indicatif's binary units).
pub(crate) fn human_size(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// A timestamp for people: RFC 3339 in UTC, to the second (`2024-10-04T00:00:00Z`).
pub(crate) fn human_time(t: archive_core::Timestamp) -> String {
    let ms = t.unix_millis();
    // humantime formats years up to 9999; the timestamp's own form covers the rest.
    if ms >= 253_402_300_800_000 {
        return t.to_string();
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_dates() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.50 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.00 GiB");
        let day = |d: u64| archive_core::Timestamp::from_unix_millis(d * 86_400_000);
        assert_eq!(human_time(day(0)), "1970-01-01T00:00:00Z");
        assert_eq!(human_time(day(20_000)), "2024-10-04T00:00:00Z");
        assert_eq!(human_time(day(11_016)), "2000-02-29T00:00:00Z");
    }
}
