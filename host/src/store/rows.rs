//! Typed column access that works on rows of both engines.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use crate::workspace::DomainResult;

/// Column getters shared by SQLite and PostgreSQL rows.
pub(crate) trait RowExt {
    fn i64(&self, col: &str) -> DomainResult<i64>;
    fn opt_i64(&self, col: &str) -> DomainResult<Option<i64>>;
    fn text(&self, col: &str) -> DomainResult<String>;
    fn opt_text(&self, col: &str) -> DomainResult<Option<String>>;
    fn bytes(&self, col: &str) -> DomainResult<Vec<u8>>;
}

macro_rules! impl_row_ext {
    ($t:ty) => {
        impl RowExt for $t {
            fn i64(&self, col: &str) -> DomainResult<i64> {
                Ok(self.try_get::<i64, _>(col)?)
            }
            fn opt_i64(&self, col: &str) -> DomainResult<Option<i64>> {
                Ok(self.try_get::<Option<i64>, _>(col)?)
            }
            fn text(&self, col: &str) -> DomainResult<String> {
                Ok(self.try_get::<String, _>(col)?)
            }
            fn opt_text(&self, col: &str) -> DomainResult<Option<String>> {
                Ok(self.try_get::<Option<String>, _>(col)?)
            }
            fn bytes(&self, col: &str) -> DomainResult<Vec<u8>> {
                Ok(self.try_get::<Vec<u8>, _>(col)?)
            }
        }
    };
}

impl_row_ext!(SqliteRow);
impl_row_ext!(PgRow);

/// A metric value as stored: NaN is kept as a flag (value 0) because SQLite turns NaN into NULL.
pub(crate) fn stored_value(v: f64) -> (f64, i64) {
    if v.is_nan() { (0.0, 1) } else { (v, 0) }
}

/// The inverse of [`stored_value`].
pub(crate) fn loaded_value(v: f64, is_nan: i64) -> f64 {
    if is_nan != 0 { f64::NAN } else { v }
}
