//! A note's text from the person's editor when they give none at a
//! terminal, as `git commit` does: `$VISUAL`, else `$EDITOR`, else `vi`,
//! on a file of mode 0600 in the home (it holds the plaintext while the
//! editor runs), removed afterwards.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use cairn_client::Error;

/// The text the person writes in their editor, starting from `initial`.
pub fn edit(home: &Path, initial: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Invalid(
            "give the text, or `-` to read it from stdin (there is no terminal for an editor)"
                .into(),
        )
        .into());
    }
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|e| !e.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_owned());
    let file = Scratch(home.join(format!("note-{}.txt", std::process::id())));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file.0)
        .and_then(|mut f| f.write_all(initial.as_bytes()))
        .with_context(|| format!("preparing {}", file.0.display()))?;
    // Through the shell, as git does, so that `EDITOR="code --wait"` works.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("cairn-editor")
        .arg(&file.0)
        .status()
        .with_context(|| format!("starting the editor {editor:?}"))?;
    if !status.success() {
        bail!("the editor {editor:?} exited with {status}; nothing was saved");
    }
    let text = std::fs::read_to_string(&file.0)?;
    Ok(text.trim_end_matches('\n').to_owned())
}

/// The editor's file, removed whatever happens.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
