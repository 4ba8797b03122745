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
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
