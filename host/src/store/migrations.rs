//! The SQL migrations of both engines, embedded at build time: host/build.rs lists
//! `host/migrations/{sqlite,postgres}/<VERSION>_<description>.sql` (what `sqlx::migrate!` would
//! embed, with the same checksums, without sqlx's proc-macro crates in the build).

use std::borrow::Cow;

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// A migrator over one engine's table; `-- no-transaction` as the first line opts a migration out
/// of its transaction, as with sqlx's resolver.
fn migrator(table: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        table
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
}

/// The SQLite migrations.
pub(super) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

/// The PostgreSQL migrations.
pub(super) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.sql` file of a migrations folder is embedded, in version order, with the
    /// checksum sqlx's resolver computes from the file (the one earlier builds stored in `_sqlx_migrations`).
    #[test]
    fn every_migration_file_is_embedded_with_its_checksum() {
        for (engine, m) in [("sqlite", sqlite()), ("postgres", postgres())] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(engine);
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "sql"))
                .collect();
            files.sort();
            let embedded: Vec<&Migration> = m.iter().collect();
            assert_eq!(embedded.len(), files.len(), "{engine}");
            assert!(!files.is_empty());
            for (mig, file) in embedded.iter().zip(&files) {
                let name = file.file_name().unwrap().to_string_lossy().to_string();
                let (version, rest) = name.split_once('_').unwrap();
                assert_eq!(mig.version, version.parse::<i64>().unwrap(), "{name}");
                assert_eq!(
                    mig.description,
                    rest.trim_end_matches(".sql").replace('_', " ")
                );
                let sql = std::fs::read_to_string(file).unwrap();
                assert_eq!(mig.sql.as_str(), sql, "{name}");
                // sqlx's resolver stores SHA-384 of the file's text
                use sha2::Digest;
                assert_eq!(&*mig.checksum, &sha2::Sha384::digest(&sql)[..], "{name}");
            }
        }
    }
}
