//! Printing results as tables or JSON.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

use super::Output;

/// Prints JSON on stdout, pretty-printed (the one form `--output json` uses).
pub fn json_out(json: &Value) {
    println!("{}", serde_json::to_string_pretty(json).unwrap_or_default());
}

/// Prints JSON as is, or the given rows as a table.
pub fn print(output: Output, json: &Value, header: &[&str], rows: Vec<Vec<String>>) {
    match output {
        Output::Json => json_out(json),
        Output::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic);
            t.set_header(header.to_vec());
            for r in rows {
                t.add_row(r);
            }
            println!("{t}");
        }
    }
}

/// A JSON scalar as display text ("" for null).
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time(v: &Value) -> String {
    let Some(ms) = v.as_i64() else {
        return String::new();
    };
    // one formatter for people, shared with the portal
    atrium_portal::fmt::time(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(time(&serde_json::json!(0)), "1970-01-01 00:00:00");
        assert_eq!(
            time(&serde_json::json!(1_700_000_000_000i64)),
            "2023-11-14 22:13:20"
        );
        assert_eq!(time(&Value::Null), "");
    }
}
