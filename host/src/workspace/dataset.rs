//! Tabular datasets: CSV parsing with precise errors, and schema inference.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// How a column is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// Every non-null value is a number.
    Numeric,
    /// Few distinct values.
    Categorical,
    /// Free text (many distinct values).
    Text,
}

/// One inferred column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ColumnSchema {
    /// Header name.
    pub name: String,
    /// Inferred kind.
    pub kind: ColumnKind,
    /// Whether some values are missing.
    pub nullable: bool,
    /// Number of distinct non-null values.
    pub distinct: usize,
}

/// A parsed table: header and rows of text cells.
#[derive(Debug, Clone)]
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Rows, each as long as the header.
    pub rows: Vec<Vec<String>>,
}

/// Values read as missing.
pub fn is_null(v: &str) -> bool {
    matches!(
        v.trim(),
        "" | "NA" | "N/A" | "na" | "null" | "NULL" | "None" | "NaN" | "nan"
    )
}

/// Field delimiters an upload may use: comma, semicolon, tab, pipe.
pub const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// A delimiter as people write it: `,`, `;`, `|`, or `tab` / `\t` / a tab character.
pub fn parse_delimiter(s: &str) -> Result<u8, DomainError> {
    match s {
        "," | "comma" => Ok(b','),
        ";" | "semicolon" => Ok(b';'),
        "\t" | "\\t" | "tab" => Ok(b'\t'),
        "|" | "pipe" => Ok(b'|'),
        other => Err(DomainError::invalid(format!(
            "unsupported delimiter '{other}': use ',', ';', 'tab' or '|'"
        ))),
    }
}

/// A delimiter's name in messages (`tab` for the tab).
pub fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tab".to_string(),
        other => (other as char).to_string(),
    }
}

/// Guesses the delimiter from the header line: the one of [`DELIMITERS`] occurring most often
/// outside quotes (a comma on a tie or when none occurs).
pub fn detect_delimiter(bytes: &[u8]) -> u8 {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for &b in bytes.iter().skip_while(|b| b.is_ascii_whitespace()) {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = DELIMITERS.iter().position(|d| *d == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    let mut best = 0;
    for i in 1..DELIMITERS.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    DELIMITERS[best]
}

/// Parses an upload with the given delimiter, or the one [`detect_delimiter`] finds; returns
/// the table and the delimiter used. Beyond [`parse_csv`]'s checks, refuses a one-column file
/// whose header holds another likely delimiter (a `;`-separated file read with `,`).
pub fn parse_upload(bytes: &[u8], delimiter: Option<u8>) -> Result<(Table, u8), DomainError> {
    let d = delimiter.unwrap_or_else(|| detect_delimiter(bytes));
    let t = parse_csv_with(bytes, d)?;
    if let [only] = t.header.as_slice()
        && let Some(other) = DELIMITERS
            .iter()
            .copied()
            .find(|o| *o != d && only.as_bytes().contains(o))
    {
        let shown: String = only.chars().take(60).collect();
        return Err(DomainError::invalid(format!(
            "the file reads as one column with delimiter '{}', but its header '{shown}' holds '{}': \
             give the delimiter it uses (`--delimiter {}`; API: ?delimiter=)",
            delimiter_name(d),
            delimiter_name(other),
            delimiter_name(other)
        )));
    }
    Ok((t, d))
}

/// A table as comma-separated CSV (what [`parse_csv`] reads back as the same table).
pub fn to_csv(t: &Table) -> Result<Vec<u8>, DomainError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| DomainError::Internal(format!("cannot write CSV: {e}"));
    w.write_record(&t.header).map_err(err)?;
    for r in &t.rows {
        w.write_record(r).map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| DomainError::Internal(format!("cannot write CSV: {e}")))
}

/// Parses a comma-separated CSV with a header row; see [`parse_csv_with`].
pub fn parse_csv(bytes: &[u8]) -> Result<Table, DomainError> {
    parse_csv_with(bytes, b',')
}

/// Parses a CSV with a header row and the given delimiter. Refuses: empty input, non-UTF-8,
/// duplicate or empty header names, and rows whose field count differs from the header's
/// (naming the line).
pub fn parse_csv_with(bytes: &[u8], delimiter: u8) -> Result<Table, DomainError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DomainError::invalid("the file is empty"));
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        return Err(DomainError::invalid(format!(
            "the file is not UTF-8 text: invalid byte at offset {} (line {line})",
            e.valid_up_to()
        )));
    }
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| DomainError::invalid(format!("cannot read the header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut seen = HashSet::new();
    for (i, h) in header.iter().enumerate() {
        if h.is_empty() {
            return Err(DomainError::invalid(format!(
                "header column {} has no name",
                i + 1
            )));
        }
        if !seen.insert(h.as_str()) {
            return Err(DomainError::invalid(format!(
                "the header names column '{h}' twice"
            )));
        }
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| DomainError::invalid(format!("invalid CSV: {e}")))?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if rec.len() == 1 && rec.get(0).is_some_and(|v| v.trim().is_empty()) && header.len() > 1 {
            continue; // blank line
        }
        if rec.len() != header.len() {
            return Err(DomainError::invalid(format!(
                "line {line} has {} fields; the header has {}",
                rec.len(),
                header.len()
            )));
        }
        rows.push(rec.iter().map(str::to_string).collect());
    }
    if rows.is_empty() {
        return Err(DomainError::invalid("the file has a header but no rows"));
    }
    Ok(Table { header, rows })
}

/// Infers each column's kind: numeric when every non-null value parses as a number;
/// otherwise categorical when distinct values are few (at most 50) and some repeat,
/// else text.
pub fn infer_schema(t: &Table) -> Vec<ColumnSchema> {
    // one row-major pass (cells of a row are close in memory), per-column state
    struct State<'a> {
        nullable: bool,
        numeric: bool,
        distinct: foldhash::HashSet<&'a str>,
    }
    let mut cols: Vec<State> = (0..t.header.len())
        .map(|_| State {
            nullable: false,
            numeric: true,
            distinct: foldhash::HashSet::default(),
        })
        .collect();
    for row in &t.rows {
        for (st, cell) in cols.iter_mut().zip(row) {
            let v = cell.trim();
            if is_null(v) {
                st.nullable = true;
                continue;
            }
            if st.numeric && v.parse::<f64>().is_err() {
                st.numeric = false;
            }
            if st.distinct.len() <= 10_000 {
                st.distinct.insert(v);
            }
        }
    }
    cols.into_iter()
        .zip(&t.header)
        .map(|(st, name)| {
            let distinct = st.distinct.len();
            let kind = if st.numeric && distinct > 0 {
                ColumnKind::Numeric
            } else if distinct <= 50 && distinct < t.rows.len() {
                ColumnKind::Categorical
            } else {
                ColumnKind::Text
            };
            ColumnSchema {
                name: name.clone(),
                kind,
                nullable: st.nullable,
                distinct,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(csv: &[u8]) -> String {
        parse_csv(csv).unwrap_err().to_string()
    }

    #[test]
    fn parses_and_infers() {
        let t =
            parse_csv(b"a,b,c,d\n1,x,hello world,\n2.5,y,other text,3\n-1,x,third,4\n").unwrap();
        assert_eq!(t.rows.len(), 3);
        let s = infer_schema(&t);
        assert_eq!(s[0].kind, ColumnKind::Numeric);
        assert_eq!(s[1].kind, ColumnKind::Categorical);
        assert_eq!(s[2].kind, ColumnKind::Text);
        assert!(s[3].nullable && s[3].kind == ColumnKind::Numeric);
    }

    #[test]
    fn delimiters_are_detected_or_given() {
        assert_eq!(detect_delimiter(b"a;b;c\n1;2;3\n"), b';');
        assert_eq!(detect_delimiter(b"a\tb\n1\t2\n"), b'\t');
        assert_eq!(detect_delimiter(b"\"x;y\",z\n1,2\n"), b',');
        assert_eq!(detect_delimiter(b"only\n1\n"), b',');
        let (t, d) = parse_upload(b"a;b;c\n1,5;2;x\n", None).unwrap();
        assert_eq!((d, t.header.len()), (b';', 3));
        assert_eq!(t.rows[0], vec!["1,5", "2", "x"]);
        // stored as comma-separated: reads back as the same table
        let back = parse_csv(&to_csv(&t).unwrap()).unwrap();
        assert_eq!((back.header, back.rows), (t.header.clone(), t.rows.clone()));
        let (t, _) = parse_upload(b"a\tb\n1\t2\n", Some(b'\t')).unwrap();
        assert_eq!(t.header, vec!["a", "b"]);
        // a ';' file read with ',' is one column: refused, naming the likely delimiter
        let e = parse_upload(b"a;b;c\n1;2;3\n", Some(b','))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("one column") && e.contains("--delimiter ;"),
            "{e}"
        );
        // a real one-column file is fine
        assert_eq!(
            parse_upload(b"x\n1\n2\n", None).unwrap().0.header,
            vec!["x"]
        );
        assert_eq!(parse_delimiter("tab").unwrap(), b'\t');
        assert!(parse_delimiter(":").is_err());
    }

    #[test]
    fn bad_files_are_precise() {
        assert!(err(b"").contains("empty"));
        assert!(err(b"a,b\n1,2\n3\n").contains("line 3 has 1 fields; the header has 2"));
        assert!(err(b"a,b,a\n1,2,3\n").contains("column 'a' twice"));
        assert!(
            err(b"a,b\n1,\xff\n").contains("not UTF-8") && err(b"a,b\n1,\xff\n").contains("line 2")
        );
        assert!(err(b"a,b\n").contains("no rows"));
    }
}
