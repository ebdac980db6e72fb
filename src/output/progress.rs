//! Progress for long work: indicatif bars and spinners when stderr is a terminal, plain
//! lines otherwise (and nothing of either under `--json`, where stdout carries the data).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::Output;

/// Where progress goes.
pub struct Progress {
    out: Output,
    spinner: Option<ProgressBar>,
}

impl Progress {
    /// A spinner on a terminal, plain lines elsewhere.
    pub fn new(out: Output) -> Self {
        let live = !out.json && std::io::stderr().is_terminal();
        let spinner = live.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Progress { out, spinner }
    }

    /// A line that stays (above the spinner on a terminal).
    pub fn line(&self, text: &str) {
        match &self.spinner {
            Some(bar) => bar.println(text),
            None if !self.out.json => self.out.note(text),
            None => {}
        }
    }

    /// What is happening now (only shown by the spinner).
    pub fn status(&self, text: &str) {
        if let Some(bar) = &self.spinner {
            bar.set_message(text.to_string());
        }
    }

    /// A byte counter for an upload of `total` bytes, when there is a terminal.
    pub fn bytes(&self, total: u64) -> Option<ProgressBar> {
        self.spinner.as_ref()?;
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "    uploading {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(bar)
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
