//! Printing: text for people, JSON for scripts.

use std::time::{Duration, UNIX_EPOCH};

use cairn_client::ErrorKind;
use serde::Serialize;

/// Prints `value` as one JSON line.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Prints an error, and what to do about it when there is something: on
/// stderr, as one JSON object under `--json` (`hint` only when there is
/// one).
pub fn error(json: bool, error: &anyhow::Error, kind: Option<ErrorKind>, hint: Option<String>) {
    let message = format!("{error:#}");
    if json {
        let kind = kind.map_or_else(|| "other".to_owned(), |k| format!("{k:?}"));
        let value = match hint {
            Some(hint) => serde_json::json!({ "error": message, "kind": kind, "hint": hint }),
            None => serde_json::json!({ "error": message, "kind": kind }),
        };
        eprintln!("{value}");
    } else {
        eprintln!("cairn: {message}");
        if let Some(hint) = hint {
            eprintln!("hint: {hint}");
        }
    }
}

/// A timestamp in ms since the Unix epoch, as RFC 3339 (UTC, seconds).
pub fn time(ms: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A long id shortened for tables: its first 16 characters.
pub fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}
