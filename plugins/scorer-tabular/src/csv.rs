//! `text/csv` requests: a header row naming the columns, then one row per line; empty fields
//! are missing values. Quoted fields (`"a, b"`, `""` for a quote) are understood.

use std::borrow::Cow;

use crate::error::Error;
use crate::invalid;
use crate::request::check_rows;
use crate::signature::Signature;
use crate::value::from_text;

/// The raw matrix of a CSV body.
pub fn parse(sig: &Signature, max: usize, body: &[u8]) -> Result<Vec<f32>, Error> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::Invalid("request body is not valid UTF-8".into()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records = records(text)?;
    let Some((header, rows)) = records.split_first() else {
        return invalid!("a CSV request needs a header row naming the columns, then rows");
    };
    let mut positions = Vec::with_capacity(sig.width());
    for f in &sig.features {
        match header.iter().position(|h| h.trim() == f.name) {
            Some(p) => positions.push(p),
            None => return Err(sig.missing(&f.name)),
        }
    }
    check_rows(rows.len(), max)?;
    let mut data = Vec::with_capacity(rows.len() * sig.width());
    for (i, r) in rows.iter().enumerate() {
        let row = i + 1;
        if r.len() != header.len() {
            return invalid!(
                "row {row} has {} values but the header has {} columns",
                r.len(),
                header.len()
            );
        }
        for (f, &p) in sig.features.iter().zip(&positions) {
            data.push(from_text(f, &r[p], row)?);
        }
    }
    Ok(data)
}

/// The records of a CSV text; blank lines are skipped.
pub fn records(text: &str) -> Result<Vec<Vec<Cow<'_, str>>>, Error> {
    let mut out = Vec::new();
    let mut record: Vec<Cow<'_, str>> = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut line = 1;
    loop {
        // one field, starting at i
        let field: Cow<'_, str>;
        if bytes.get(i) == Some(&b'"') {
            let start_line = line;
            let mut s = String::new();
            let mut j = i + 1;
            loop {
                match text[j..].find('"') {
                    None => return invalid!("line {start_line}: unterminated quoted field"),
                    Some(k) => {
                        s.push_str(&text[j..j + k]);
                        line += text[j..j + k].matches('\n').count();
                        j += k + 1;
                        if bytes.get(j) == Some(&b'"') {
                            s.push('"');
                            j += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            field = Cow::Owned(s);
            i = j;
            // skip anything up to the separator (a malformed tail is kept out)
            while i < bytes.len() && !matches!(bytes[i], b',' | b'\n' | b'\r') {
                i += 1;
            }
        } else {
            let end = text[i..]
                .find([',', '\n', '\r'])
                .map_or(text.len(), |k| i + k);
            field = Cow::Borrowed(&text[i..end]);
            i = end;
        }
        record.push(field);
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b'\r') | Some(b'\n') | None => {
                let blank = record.len() == 1 && record[0].trim().is_empty();
                if !blank {
                    out.push(std::mem::take(&mut record));
                } else {
                    record.clear();
                }
                if bytes.get(i) == Some(&b'\r') {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'\n') {
                    i += 1;
                }
                line += 1;
                if i >= bytes.len() {
                    break;
                }
            }
            Some(_) => unreachable!("fields end at a separator"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_records() {
        let r = records("a,b\r\n1,\"x, \"\"y\"\"\"\n\n2,\n").unwrap();
        assert_eq!(
            r,
            vec![vec!["a", "b"], vec!["1", "x, \"y\""], vec!["2", ""]]
        );
        assert_eq!(records("").unwrap(), Vec::<Vec<Cow<'_, str>>>::new());
        assert_eq!(
            records("a\n\"b").unwrap_err().message(),
            "line 2: unterminated quoted field"
        );
    }
}
