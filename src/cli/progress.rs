//! Progress bars on stderr, only when it is a terminal and not `-q`.

use std::io::IsTerminal;
use std::time::Duration;

use harmony::scan::ScanProgress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Output;

/// A scan's progress: a spinner while listing, then a byte bar while reading.
pub struct ScanBar {
    bar: ProgressBar,
}

impl ScanBar {
    pub fn new(out: &Output) -> Self {
        let visible = !out.quiet && std::io::stderr().is_terminal();
        let bar = if visible {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message("listing files");
        ScanBar { bar }
    }

    /// Takes the bar off the terminal: the scan is over and what follows
    /// prints on stdout.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

impl ScanProgress for ScanBar {
    fn walking(&self, files: u64) {
        self.bar.set_message(format!("listing files: {files}"));
    }

    fn reading(&self, files: u64, bytes: u64) {
        if files == 0 {
            return;
        }
        self.bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.bar.set_length(bytes);
        self.bar.set_position(0);
        self.bar
            .set_message(format!("reading {files} changed files"));
    }

    fn read(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
}

impl Drop for ScanBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
