//! Progress bars on a terminal; nothing when stderr is not one.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(crate) struct AddBar {
    bar: ProgressBar,
}

impl AddBar {
    pub(crate) fn new() -> Self {
        let bar = ProgressBar::hidden();
        if std::io::stderr().is_terminal() && !crate::output::is_forwarded() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        AddBar { bar }
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl archive_core::AddProgress for AddBar {
    fn start(&mut self, files: u64, bytes: u64) {
        self.bar.set_length(bytes);
        self.bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.bar.set_message(format!("{files} files"));
    }

    fn bytes(&mut self, n: u64) {
        self.bar.inc(n);
    }
}

/// A byte bar for a sync, fed from the transfer's counters by a small thread.
pub(crate) struct SyncBar {
    bar: ProgressBar,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SyncBar {
    pub(crate) fn start(counters: std::sync::Arc<archive_net::Counters>) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let bar = ProgressBar::hidden();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() || crate::output::is_forwarded() {
            return SyncBar {
                bar,
                stop,
                thread: None,
            };
        }
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        let (b, s) = (bar.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            use archive_net::Counters as C;
            while !s.load(Ordering::Relaxed) {
                b.set_length(C::get(&counters.bytes_expected).max(1));
                b.set_position(C::get(&counters.bytes_received));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        SyncBar {
            bar,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn finish(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}
