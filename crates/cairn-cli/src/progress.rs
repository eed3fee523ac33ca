//! The sync progress bar: drawn only on a terminal, never under `--json`,
//! and only once the work is large enough to be worth watching.

use std::io::IsTerminal;

use cairn_client::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// Envelopes moved before a bar appears.
const THRESHOLD: u64 = 256;

/// A lazily drawn progress bar.
#[derive(Debug)]
pub struct Bar {
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar that draws only if stdout is a terminal and output is text.
    pub fn new(json: bool) -> Self {
        Self {
            enabled: !json && std::io::stdout().is_terminal(),
            bar: None,
        }
    }

    /// Removes the bar before the summary is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn update(&mut self, pushed: u64, pulled: u64, more: bool) {
        if !self.enabled || (self.bar.is_none() && pushed + pulled < THRESHOLD) {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
                bar.set_style(style);
            }
            bar
        });
        let state = if more { "syncing" } else { "finishing" };
        bar.set_message(format!("{state}: {pushed} pushed, {pulled} pulled"));
        bar.tick();
    }
}
