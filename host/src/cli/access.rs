//! `atrium user|token|role|audit|whoami`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, encode_query};
use super::output::{json_out, print, text, time};
use super::{CliError, Output};

/// `atrium user ...` (server admins).
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user (then give them a token and roles).
    Create {
        /// Name: letters, digits, '-', '_', '.', '@'.
        name: String,
        /// Make them a server admin.
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List,
    /// Show a user and their roles.
    Show {
        /// Name.
        name: String,
    },
    /// Delete a user with their tokens and roles.
    Delete {
        /// Name.
        name: String,
    },
}

/// `atrium token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token (printed once; only its hash is kept).
    Create {
        /// For another user (server admins).
        #[arg(long)]
        user: Option<String>,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Lifetime, e.g. 3600, 90m, 12h, 30d (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List your tokens (admins: --user NAME or --all).
    List {
        /// Another user's tokens.
        #[arg(long)]
        user: Option<String>,
        /// Everyone's tokens.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a token by id (tok_...): refused from the next request on.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// `atrium role ...` (on `--workspace`).
#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// Give a user a role on the workspace (Owner only).
    Assign {
        /// User name.
        user: String,
        /// Owner, Contributor or Reader.
        role: String,
    },
    /// Take a user's role away (Owner only).
    Remove {
        /// User name.
        user: String,
    },
    /// List the workspace's role assignments.
    List,
}

/// `atrium audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// List audit records, newest first (of --workspace; --host for the whole host).
    List {
        /// The whole host (server admins).
        #[arg(long)]
        host: bool,
        /// Only this user.
        #[arg(long)]
        actor: Option<String>,
        /// Actions containing this text (e.g. DELETE, /endpoints/).
        #[arg(long)]
        action: Option<String>,
        /// Objects containing this text (an id or a name).
        #[arg(long)]
        object: Option<String>,
        /// ok, denied or failed.
        #[arg(long)]
        result: Option<String>,
        /// Only records of the last N seconds.
        #[arg(long)]
        since_secs: Option<u64>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// Parses `3600`, `90s`, `90m`, `12h`, `30d` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, CliError> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| {
        CliError::Usage(format!(
            "invalid duration '{s}': use e.g. 3600, 90m, 12h, 30d"
        ))
    })?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(CliError::Usage(format!(
                "invalid duration unit in '{s}': use s, m, h or d"
            )));
        }
    };
    Ok(n * mult)
}

fn rows(v: &Value, key: &str, f: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    v[key]
        .as_array()
        .map(|a| a.iter().map(f).collect())
        .unwrap_or_default()
}

/// Runs `atrium user ...`.
pub async fn user(c: &Client, cmd: UserCmd, out: Output) -> Result<(), CliError> {
    let user_row = |u: &Value| vec![text(&u["name"]), text(&u["admin"]), time(&u["created_at"])];
    let header = ["name", "admin", "created"];
    match cmd {
        UserCmd::Create { name, admin } => {
            let v = c
                .call(
                    Method::POST,
                    "/api/v1/users",
                    Some(&json!({ "name": name, "admin": admin })),
                )
                .await?;
            print(out, &v, &header, vec![user_row(&v)]);
        }
        UserCmd::List => {
            let v = c.get("/api/v1/users").await?;
            print(out, &v, &header, rows(&v, "users", user_row));
        }
        UserCmd::Show { name } => {
            let v = c
                .get(&format!("/api/v1/users/{}", encode_query(&name)))
                .await?;
            let roles = rows(&v, "roles", |r| {
                vec![text(&r["workspace"]), text(&r["role"])]
            });
            print(out, &v, &["workspace", "role"], roles);
        }
        UserCmd::Delete { name } => {
            let v = c
                .call(
                    Method::DELETE,
                    &format!("/api/v1/users/{}", encode_query(&name)),
                    None,
                )
                .await?;
            done(out, &v, &format!("deleted user {name}"));
        }
    }
    Ok(())
}

fn done(out: Output, v: &Value, msg: &str) {
    if out == Output::Json {
        json_out(v);
    } else {
        println!("{msg}");
    }
}

/// Runs `atrium token ...`.
pub async fn token(c: &Client, cmd: TokenCmd, out: Output) -> Result<(), CliError> {
    let token_row = |t: &Value| {
        vec![
            text(&t["id"]),
            text(&t["user"]),
            text(&t["description"]),
            time(&t["created_at"]),
            time(&t["expires_at"]),
            time(&t["revoked_at"]),
        ]
    };
    let header = ["id", "user", "description", "created", "expires", "revoked"];
    match cmd {
        TokenCmd::Create {
            user,
            description,
            expires_in,
        } => {
            let secs = expires_in.as_deref().map(parse_duration).transpose()?;
            let v = c
                .call(
                    Method::POST,
                    "/api/v1/tokens",
                    Some(&json!({ "user": user, "description": description, "expires_in_secs": secs })),
                )
                .await?;
            if out == Output::Json {
                json_out(&v);
            } else {
                eprintln!(
                    "created token {} for {} (shown once: store it now)",
                    text(&v["id"]),
                    text(&v["user"])
                );
                println!("{}", text(&v["token"]));
            }
        }
        TokenCmd::List { user, all } => {
            let mut path = "/api/v1/tokens".to_string();
            if all {
                path.push_str("?all=true");
            } else if let Some(u) = user {
                path.push_str(&format!("?user={}", encode_query(&u)));
            }
            let v = c.get(&path).await?;
            print(out, &v, &header, rows(&v, "tokens", token_row));
        }
        TokenCmd::Revoke { id } => {
            let v = c
                .call(
                    Method::DELETE,
                    &format!("/api/v1/tokens/{}", encode_query(&id)),
                    None,
                )
                .await?;
            done(out, &v, &format!("revoked token {id}"));
        }
    }
    Ok(())
}

/// Runs `atrium role ...`.
pub async fn role(c: &Client, cmd: RoleCmd, out: Output) -> Result<(), CliError> {
    let header = ["workspace", "user", "role"];
    let row = |r: &Value| vec![text(&r["workspace"]), text(&r["user"]), text(&r["role"])];
    match cmd {
        RoleCmd::Assign { user, role } => {
            let v = c
                .call(
                    Method::PUT,
                    &c.ws_path(&format!("/roles/{}", encode_query(&user))),
                    Some(&json!({ "role": role })),
                )
                .await?;
            print(out, &v, &header, vec![row(&v)]);
        }
        RoleCmd::Remove { user } => {
            let v = c
                .call(
                    Method::DELETE,
                    &c.ws_path(&format!("/roles/{}", encode_query(&user))),
                    None,
                )
                .await?;
            done(out, &v, &format!("removed the role of {user}"));
        }
        RoleCmd::List => {
            let v = c.get(&c.ws_path("/roles")).await?;
            print(out, &v, &header, rows(&v, "roles", row));
        }
    }
    Ok(())
}

/// Runs `atrium audit ...`.
pub async fn audit(c: &Client, cmd: AuditCmd, out: Output) -> Result<(), CliError> {
    let AuditCmd::List {
        host,
        actor,
        action,
        object,
        result,
        since_secs,
        limit,
    } = cmd;
    let mut q = vec![format!("max_results={}", limit.clamp(1, 1000))];
    for (k, v) in [
        ("actor", actor),
        ("action", action),
        ("object", object),
        ("result", result),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", encode_query(&v)));
        }
    }
    if let Some(s) = since_secs {
        q.push(format!(
            "since={}",
            crate::workspace::now_millis() - (s as i64) * 1000
        ));
    }
    let base = if host {
        "/api/v1/audit".to_string()
    } else {
        c.ws_path("/audit")
    };
    let v = c.get(&format!("{base}?{}", q.join("&"))).await?;
    let row = |e: &Value| {
        vec![
            time(&e["at"]),
            text(&e["workspace"]),
            text(&e["actor"]),
            text(&e["action"]),
            text(&e["object"]),
            text(&e["status"]),
            text(&e["result"]),
        ]
    };
    print(
        out,
        &v,
        &[
            "at",
            "workspace",
            "actor",
            "action",
            "object",
            "status",
            "result",
        ],
        rows(&v, "entries", row),
    );
    Ok(())
}

/// Runs `atrium whoami`.
pub async fn whoami(c: &Client, out: Output) -> Result<(), CliError> {
    let v = c.get("/api/v1/whoami").await?;
    if out == Output::Json {
        json_out(&v);
        return Ok(());
    }
    println!(
        "{}{} (token {})",
        text(&v["user"]),
        if v["admin"].as_bool() == Some(true) {
            ", server admin"
        } else {
            ""
        },
        text(&v["token_id"])
    );
    let roles = rows(&v, "roles", |r| {
        vec![text(&r["workspace"]), text(&r["role"])]
    });
    print(out, &v, &["workspace", "role"], roles);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600").unwrap(), 3600);
        assert_eq!(parse_duration("90m").unwrap(), 5400);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5w").is_err());
    }
}
