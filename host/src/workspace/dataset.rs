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

/// Parses a CSV with a header row. Refuses: empty input, non-UTF-8, duplicate or empty header
/// names, and rows whose field count differs from the header's (naming the line).
pub fn parse_csv(bytes: &[u8]) -> Result<Table, DomainError> {
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
