//! `cairn export --out FILE`: the user's own history, decrypted, as JSON
//! lines (`spec/client.md` section 7), for the user to read or keep: a
//! header, then every note, post of the feed, direct message, friend and
//! audience, in the
//! shapes `--json` prints them. It holds plaintext, so the file is made
//! new (never over another) and readable by its owner only.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use cairn_client::Client;
use serde::Serialize;
use serde_json::json;

use crate::views::{AudienceJson, FriendJson, MessageJson, NoteJson, PostJson};

/// The `format` of the header line.
const FORMAT: &str = "cairn-user-export";
/// Its `version`.
const VERSION: u32 = 1;

/// What was written, by kind.
#[derive(Debug, Default, Serialize)]
pub struct Written {
    notes: usize,
    posts: usize,
    messages: usize,
    friends: usize,
    audiences: usize,
}

/// Writes the export of `client`'s user to `out` (`-`: stdout).
pub fn export(client: &Client, out: &Path) -> Result<Written> {
    if out == Path::new("-") {
        return write(client, &mut std::io::stdout().lock());
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| {
            format!(
                "creating {} (an export never replaces a file)",
                out.display()
            )
        })?;
    let written = write(client, &mut file)?;
    file.sync_all()?;
    Ok(written)
}

fn write(client: &Client, out: &mut impl Write) -> Result<Written> {
    let who = client.whoami();
    line(
        out,
        &json!({
            "kind": "header",
            "format": FORMAT,
            "version": VERSION,
            "user": who.user,
            "device": who.device,
        }),
    )?;
    let mut written = Written::default();
    for note in client.notes()? {
        line(out, &tagged("note", &NoteJson::from(&note))?)?;
        written.notes += 1;
    }
    for post in client.feed()? {
        line(out, &tagged("post", &PostJson::from(&post))?)?;
        written.posts += 1;
    }
    for message in client.messages()? {
        line(out, &tagged("message", &MessageJson::from(&message))?)?;
        written.messages += 1;
    }
    for friend in client.friends()? {
        line(out, &tagged("friend", &FriendJson::from(&friend))?)?;
        written.friends += 1;
    }
    for audience in client.audiences()? {
        line(out, &tagged("audience", &AudienceJson::from(&audience))?)?;
        written.audiences += 1;
    }
    out.flush()?;
    Ok(written)
}

/// `value` with `"kind": kind` added.
fn tagged(kind: &str, value: &impl Serialize) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(value)?;
    if let Some(fields) = value.as_object_mut() {
        fields.insert("kind".into(), kind.into());
    }
    Ok(value)
}

fn line(out: &mut impl Write, value: &serde_json::Value) -> Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}
