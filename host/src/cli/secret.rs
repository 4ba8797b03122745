//! `atrium secret ...`: set, list, show and delete workspace secrets. Values go to the server
//! only; nothing here prints one.

use std::io::{IsTerminal, Read};

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, encode_path};
use super::output::{print, text, time};
use super::{CliError, Output};

/// `atrium secret ...`
#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// Create or replace a secret; the value comes from standard input (one trailing newline
    /// removed) or from --file (taken as is).
    Set {
        /// Secret name: letters, digits, '-', '_', '.'.
        name: String,
        /// Read the value from this file instead of standard input.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
    /// List the workspace's secrets (names and metadata, never values).
    List,
    /// Show a secret's metadata and the datastores granted it (never its value).
    Show {
        /// Secret name.
        name: String,
    },
    /// Delete a secret (refused while a datastore is granted it).
    Delete {
        /// Secret name.
        name: String,
    },
}

/// Drops one trailing `\n` (or `\r\n`), as `echo` or a terminal adds it.
fn strip_one_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

fn read_value(file: Option<&std::path::Path>) -> Result<String, CliError> {
    match file {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                CliError::Usage(format!(
                    "cannot read the value from {}: {e}",
                    path.display()
                ))
            })?;
            String::from_utf8(bytes).map_err(|_| {
                CliError::Usage(format!(
                    "{} is not UTF-8 text; encode binary values (base64) first",
                    path.display()
                ))
            })
        }
        None => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("enter the value, then press Ctrl-D:");
            }
            let mut bytes = Vec::new();
            stdin.read_to_end(&mut bytes)?;
            let text = String::from_utf8(bytes).map_err(|_| {
                CliError::Usage(
                    "the value on standard input is not UTF-8 text; encode binary values (base64) first"
                        .into(),
                )
            })?;
            Ok(strip_one_newline(text))
        }
    }
}

fn row(m: &Value) -> Vec<String> {
    vec![
        text(&m["name"]),
        text(&m["version"]),
        time(&m["created_at"]),
        time(&m["updated_at"]),
        text(&m["created_by"]),
    ]
}

const HEADER: [&str; 5] = ["secret", "version", "created", "updated", "created by"];

/// Runs `atrium secret ...`.
pub async fn secret(c: &Client, cmd: SecretCmd, out: Output) -> Result<(), CliError> {
    let path = |name: &str| c.ws_path(&format!("/secrets/{}", encode_path(name)));
    match cmd {
        SecretCmd::Set { name, file } => {
            let value = read_value(file.as_deref())?;
            let v = c
                .call(Method::PUT, &path(&name), Some(&json!({ "value": value })))
                .await?;
            drop(value);
            if out == Output::Json {
                print(out, &v, &[], vec![]);
            } else {
                let what = if v["version"].as_i64() == Some(1) {
                    "created"
                } else {
                    "replaced"
                };
                println!("{what} secret {name} (version {})", text(&v["version"]));
            }
        }
        SecretCmd::List => {
            let v = c.get(&c.ws_path("/secrets")).await?;
            let rows = v["secrets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(row)
                .collect();
            print(out, &v, &HEADER, rows);
        }
        SecretCmd::Show { name } => {
            let v = c.get(&path(&name)).await?;
            let mut r = row(&v);
            let ds = v["datastores"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect::<Vec<_>>()
                .join(", ");
            r.push(ds);
            let mut header = HEADER.to_vec();
            header.push("granted to datastores");
            print(out, &v, &header, vec![r]);
        }
        SecretCmd::Delete { name } => {
            let v = c.call(Method::DELETE, &path(&name), None).await?;
            if out == Output::Json {
                print(out, &v, &[], vec![]);
            } else {
                println!("deleted secret {name}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_exactly_one_newline() {
        assert_eq!(strip_one_newline("abc\n".into()), "abc");
        assert_eq!(strip_one_newline("abc\r\n".into()), "abc");
        assert_eq!(strip_one_newline("abc\n\n".into()), "abc\n");
        assert_eq!(strip_one_newline("abc".into()), "abc");
        assert_eq!(strip_one_newline(" abc ".into()), " abc ");
    }
}
