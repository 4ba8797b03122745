//! `atrium login` and `atrium logout`: check a token against a server and keep it in the CLI
//! profile (see [`super::profile`] for where commands then find it).

use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsRawFd;

use super::client::{Client, ClientError};
use super::output::{json_out, text};
use super::profile::{self, Profile, ServerLogin};
use super::{Cli, CliError, Output};

fn profile_file() -> Result<std::path::PathBuf, CliError> {
    profile::profile_path().ok_or_else(|| {
        CliError::Usage(
            "cannot place the CLI profile: set HOME or XDG_CONFIG_HOME to an absolute directory"
                .into(),
        )
    })
}

/// Reads one line from stdin, without echo when it is a terminal.
fn read_token(server: &str) -> Result<String, CliError> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut saved = None;
    if tty {
        eprint!("API token for {server}: ");
        let _ = std::io::stderr().flush();
        let fd = stdin.as_raw_fd();
        // SAFETY: termios calls on stdin's descriptor with a zeroed struct they fill in.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) == 0 {
                saved = Some(t);
                t.c_lflag &= !libc::ECHO;
                libc::tcsetattr(fd, libc::TCSANOW, &t);
            }
        }
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(stdin.as_raw_fd(), libc::TCSANOW, &t) };
        eprintln!();
    }
    read?;
    let token = line.trim().to_string();
    if token.is_empty() {
        return Err(CliError::Usage(
            "no token given: pass --token TOKEN (or ATRIUM_TOKEN), or type it on stdin".into(),
        ));
    }
    Ok(token)
}

/// Runs `atrium login`: asks the server who the token is, then saves server, token (and the
/// workspace, when `-w` is given) as the default login.
pub async fn login(cli: Cli) -> Result<(), CliError> {
    let path = profile_file()?;
    let mut p = Profile::load(&path)?;
    let server = profile::normalize(
        &cli.server
            .clone()
            .or_else(|| p.default_server.clone())
            .unwrap_or_else(|| profile::DEFAULT_SERVER.into()),
    );
    let token = match cli.token.clone().filter(|t| !t.trim().is_empty()) {
        Some(t) => t.trim().to_string(),
        None => read_token(&server)?,
    };
    let ws = cli.workspace.clone().unwrap_or_else(|| "default".into());
    let client = Client::new(&server, &ws, Some(&token))?;
    let who = match client.get("/api/v1/whoami").await {
        Ok(v) => v,
        Err(ClientError::Api {
            status: reqwest::StatusCode::UNAUTHORIZED,
            message,
            ..
        }) => {
            return Err(CliError::Unauthenticated {
                message,
                hint: format!(
                    "the token given to `atrium login` is not valid on {server}; nothing was saved"
                ),
            });
        }
        Err(e) => return Err(e.into()),
    };
    p.servers.insert(
        server.clone(),
        ServerLogin {
            token,
            workspace: cli.workspace.clone(),
        },
    );
    p.default_server = Some(server.clone());
    p.save(&path)?;
    if cli.output == Output::Json {
        json_out(&serde_json::json!({
            "server": server,
            "user": who["user"],
            "token_id": who["token_id"],
            "workspace": cli.workspace,
            "profile": path.display().to_string(),
        }));
    } else {
        println!(
            "logged in to {server} as {} (token {}); saved in {}",
            text(&who["user"]),
            text(&who["token_id"]),
            path.display()
        );
    }
    Ok(())
}

/// Runs `atrium logout`: forgets the saved token of `--server` (default: the last login's).
pub fn logout(cli: Cli) -> Result<(), CliError> {
    let path = profile_file()?;
    let mut p = Profile::load(&path)?;
    let Some(server) = cli
        .server
        .as_deref()
        .map(profile::normalize)
        .or_else(|| p.default_server.clone())
    else {
        eprintln!("no saved login in {}", path.display());
        return Ok(());
    };
    let removed = p.servers.remove(&server).is_some();
    if p.default_server.as_deref() == Some(server.as_str()) {
        p.default_server = None;
    }
    if removed {
        p.save(&path)?;
    }
    if cli.output == Output::Json {
        json_out(&serde_json::json!({ "server": server, "removed": removed }));
    } else if removed {
        println!(
            "logged out of {server}: removed its token from {}",
            path.display()
        );
    } else {
        eprintln!("no saved login for {server} in {}", path.display());
    }
    Ok(())
}
