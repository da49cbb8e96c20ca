//! Progress bars on a terminal; nothing when stderr is not one.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(crate) struct AddBar {
    bar: ProgressBar,
}

impl AddBar {
    pub(crate) fn new() -> Self {
        let bar = ProgressBar::hidden();
        if std::io::stderr().is_terminal() {
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
