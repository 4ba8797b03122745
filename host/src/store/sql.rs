//! Dynamic SQL with numbered placeholders, bound the same way on both engines.

use super::Dialect;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    I64(i64),
    F64(f64),
    Text(String),
    Bytes(Vec<u8>),
    NullInt,
    NullText,
}

/// SQL text under construction plus its bound values.
pub(crate) struct SqlBuilder {
    pub sql: String,
    pub binds: Vec<Bind>,
    pub dialect: Dialect,
}

impl SqlBuilder {
    pub fn new(dialect: Dialect) -> Self {
        Self {
            sql: String::with_capacity(512),
            binds: Vec::new(),
            dialect,
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.sql.push_str(s);
        self
    }

    /// Appends a placeholder for `b`.
    pub fn bind(&mut self, b: Bind) -> &mut Self {
        self.binds.push(b);
        self.sql.push('$');
        self.sql.push_str(&self.binds.len().to_string());
        self
    }

    pub fn bind_text(&mut self, s: &str) -> &mut Self {
        self.bind(Bind::Text(s.to_string()))
    }

    /// Appends `(p1, p2, ...)` for a list of values.
    pub fn bind_list(&mut self, items: impl IntoIterator<Item = Bind>) -> &mut Self {
        self.sql.push('(');
        for (i, b) in items.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.bind(b);
        }
        self.sql.push(')');
        self
    }

    /// Appends `column LIKE pattern` with MLflow's semantics: LIKE case-sensitive, ILIKE not.
    pub fn like(&mut self, column: &str, pattern: &str, case_insensitive: bool) -> &mut Self {
        match (self.dialect, case_insensitive) {
            (Dialect::Postgres, false) => {
                self.push(column).push(" LIKE ").bind_text(pattern);
            }
            (Dialect::Postgres, true) => {
                self.push(column).push(" ILIKE ").bind_text(pattern);
            }
            // SQLite's LIKE ignores ASCII case; GLOB is its case-sensitive matcher.
            (Dialect::Sqlite, false) => {
                let glob = like_to_glob(pattern);
                self.push(column).push(" GLOB ").bind_text(&glob);
            }
            (Dialect::Sqlite, true) => {
                self.push("lower(")
                    .push(column)
                    .push(") LIKE lower(")
                    .bind_text(pattern)
                    .push(")");
            }
        }
        self
    }
}

/// `(p, p, ...), (...)` placeholders. SQLite gets anonymous `?`: binding by number makes sqlx
/// look every parameter's name up in a linear list, which is quadratic in a 1200-value insert.
pub(crate) fn push_values(d: Dialect, s: &mut String, rows: usize, cols: usize) {
    use std::fmt::Write;
    for r in 0..rows {
        s.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            match d {
                Dialect::Sqlite => s.push('?'),
                Dialect::Postgres => {
                    let _ = write!(s, "${}", r * cols + c + 1);
                }
            }
        }
        s.push(')');
    }
}

/// Rows per multi-row statement; at most 10 columns keeps us under both engines' parameter limits.
const ROWS_PER_INSERT: usize = 1000;

/// One multi-row INSERT: `head` + `(…), (…)` + `tail`, with all values bound.
pub(crate) struct Insert {
    pub sql: String,
    pub binds: Vec<Bind>,
}

pub(crate) fn inserts(
    d: Dialect,
    head: &str,
    tail: &str,
    cols: usize,
    rows: Vec<Vec<Bind>>,
) -> Vec<Insert> {
    rows.chunks(ROWS_PER_INSERT)
        .map(|chunk| {
            let mut sql = String::from(head);
            push_values(d, &mut sql, chunk.len(), cols);
            sql.push_str(tail);
            Insert {
                sql,
                binds: chunk.iter().flatten().cloned().collect(),
            }
        })
        .collect()
}

/// Translates a LIKE pattern (`%`, `_`) into an equivalent GLOB pattern.
pub(crate) fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            other => out.push(other),
        }
    }
    out
}

/// Binds all values of a builder onto a query.
macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                $crate::store::sql::Bind::I64(v) => q.bind(*v),
                $crate::store::sql::Bind::F64(v) => q.bind(*v),
                $crate::store::sql::Bind::Text(v) => q.bind(v.clone()),
                $crate::store::sql::Bind::Bytes(v) => q.bind(v.clone()),
                $crate::store::sql::Bind::NullInt => q.bind(None::<i64>),
                $crate::store::sql::Bind::NullText => q.bind(None::<String>),
            };
        }
        q
    }};
}
pub(crate) use bind_all;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert_eq!(like_to_glob("a%b_c"), "a*b?c");
        assert_eq!(like_to_glob("x*[?"), "x[*][[][?]");
    }

    #[test]
    fn placeholders_number_in_order() {
        let mut b = SqlBuilder::new(Dialect::Sqlite);
        b.push("a = ")
            .bind(Bind::I64(1))
            .push(" AND b IN ")
            .bind_list([Bind::I64(2), Bind::I64(3)]);
        assert_eq!(b.sql, "a = $1 AND b IN ($2, $3)");
    }
}
