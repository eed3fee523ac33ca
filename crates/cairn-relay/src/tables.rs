//! `stats` and `users` for people: aligned text, sizes in binary units.
//! Scripts pass `--json` and get the operator API's JSON.

use serde_json::Value;

/// `stats` as lines of `name  value`.
pub fn stats(json: &Value) -> String {
    let n = |key: &str| json.get(key).and_then(Value::as_u64).unwrap_or(0);
    let quota = json.get("quota").cloned().unwrap_or(Value::Null);
    let quota_part = |key: &str| quota.get(key).and_then(Value::as_u64).unwrap_or(u64::MAX);
    let per_user = match (quota_part("bytes"), quota_part("envelopes")) {
        (u64::MAX, u64::MAX) => "unlimited".to_owned(),
        (bytes, u64::MAX) => size(bytes),
        (u64::MAX, envelopes) => format!("{envelopes} envelopes"),
        (bytes, envelopes) => format!("{}, {envelopes} envelopes", size(bytes)),
    };
    let rows = [
        (
            "users",
            format!("{} ({} at quota)", n("users"), n("users_at_quota")),
        ),
        (
            "devices",
            format!("{} ({} revoked)", n("devices"), n("revoked_devices")),
        ),
        ("streams", n("streams").to_string()),
        (
            "envelopes",
            format!("{} ({})", n("envelopes"), size(n("envelope_bytes"))),
        ),
        ("quota per user", per_user),
    ];
    let mut text: String = rows
        .iter()
        .map(|(name, value)| format!("{name:<16}{value}\n"))
        .collect();
    let empty = Vec::new();
    let largest = json
        .get("largest_users")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (i, user) in largest.iter().enumerate() {
        let name = if i == 0 { "largest users" } else { "" };
        let field = |key: &str| user.get(key).and_then(Value::as_u64).unwrap_or(0);
        let id = user.get("user").and_then(Value::as_str).unwrap_or("?");
        text.push_str(&format!(
            "{name:<16}{id}  {} in {} envelopes\n",
            size(field("bytes")),
            field("envelopes")
        ));
    }
    text
}

/// `users` as a table, one user per line, with a header.
pub fn users(json: &Value) -> String {
    let empty = Vec::new();
    let users = json.as_array().unwrap_or(&empty);
    if users.is_empty() {
        return "no users yet\n".to_owned();
    }
    let mut out = format!(
        "{:<64}{:>8}{:>9}{:>11}{:>11}  {}\n",
        "USER", "DEVICES", "REVOKED", "ENVELOPES", "STORED", "AT QUOTA"
    );
    for user in users {
        let devices = user
            .get("devices")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        let revoked = devices
            .iter()
            .filter(|d| d.get("revoked").and_then(Value::as_bool) == Some(true))
            .count();
        let n = |key: &str| user.get(key).and_then(Value::as_u64).unwrap_or(0);
        let at_quota = user.get("at_quota").and_then(Value::as_bool) == Some(true);
        out.push_str(&format!(
            "{:<64}{:>8}{:>9}{:>11}{:>11}  {}\n",
            user.get("user").and_then(Value::as_str).unwrap_or("?"),
            devices.len(),
            revoked,
            n("stored_envelopes"),
            size(n("stored_bytes")),
            if at_quota { "yes" } else { "no" },
        ));
    }
    out
}

/// Bytes in binary units, one decimal past KiB.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS.get(unit).unwrap_or(&"B")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn tables_show_each_user_and_the_totals() {
        let listed = serde_json::json!([{
            "user": "cu1abc", "devices": [{"device": "cd1a", "revoked": false},
            {"device": "cd1b", "revoked": true}], "stored_bytes": 2048,
            "stored_envelopes": 3, "at_quota": false,
        }]);
        let table = users(&listed);
        let line = table.lines().nth(1).unwrap_or_default();
        assert!(line.starts_with("cu1abc"), "{table}");
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells, ["cu1abc", "2", "1", "3", "2.0", "KiB", "no"]);
        assert_eq!(users(&serde_json::json!([])), "no users yet\n");
        let stats = stats(&serde_json::json!({
            "users": 1, "devices": 2, "revoked_devices": 1, "streams": 3,
            "envelopes": 3, "envelope_bytes": 2048, "users_at_quota": 0,
            "quota": {"bytes": u64::MAX, "envelopes": 100},
            "largest_users": [{"user": "cu1abc", "bytes": 2048, "envelopes": 3}],
        }));
        assert!(stats.contains("devices         2 (1 revoked)"), "{stats}");
        assert!(stats.contains("quota per user  100 envelopes"), "{stats}");
        assert!(
            stats.contains("largest users   cu1abc  2.0 KiB in 3 envelopes"),
            "{stats}"
        );
    }
}
