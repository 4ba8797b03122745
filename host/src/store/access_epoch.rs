//! The access epoch: a counter that moves on every change to users, API tokens, role
//! assignments and workspaces, so that caches of verified tokens and roles (`auth::cache`) know
//! when to read again. On PostgreSQL every change is also announced with `NOTIFY` and every
//! replica listens, so a change made through one replica moves the epoch of all of them.
//! The same listener hears the other changes replicas announce ([`Change`]: secrets,
//! endpoints), which the caches holding them follow.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};

/// The PostgreSQL notification channel for access changes.
pub(crate) const CHANNEL: &str = "atrium_access";

/// The PostgreSQL notification channel for the other changes ([`Change`]).
pub(crate) const CHANGES: &str = "atrium_changes";

/// A change that caches on every replica must see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A secret was set, replaced or deleted.
    Secret {
        /// Its workspace.
        workspace_id: i64,
        /// Its name.
        name: String,
    },
    /// An endpoint (its deployments, traffic, key) was created, changed or deleted.
    Endpoint {
        /// Its workspace.
        workspace_id: i64,
        /// Its name.
        name: String,
    },
    /// A component was uploaded (replicas fetch its bytes).
    Component {
        /// Its sha256.
        digest: String,
    },
    /// Anything may have changed (notifications were lost while the listener reconnected).
    All,
}

impl Change {
    /// The notification payload: `secret <workspace id> <name>`, `endpoint <workspace id> <name>`,
    /// `component 0 <digest>`.
    pub(crate) fn payload(&self) -> String {
        match self {
            Change::Secret { workspace_id, name } => format!("secret {workspace_id} {name}"),
            Change::Endpoint { workspace_id, name } => format!("endpoint {workspace_id} {name}"),
            Change::Component { digest } => format!("component 0 {digest}"),
            Change::All => "all".into(),
        }
    }

    /// Reads a payload back (`All` for one this version does not know).
    pub(crate) fn parse(payload: &str) -> Change {
        let mut parts = payload.splitn(3, ' ');
        let (kind, ws, name) = (parts.next(), parts.next(), parts.next());
        match (kind, ws.and_then(|w| w.parse().ok()), name) {
            (Some("secret"), Some(workspace_id), Some(n)) => Change::Secret {
                workspace_id,
                name: n.to_string(),
            },
            (Some("endpoint"), Some(workspace_id), Some(n)) => Change::Endpoint {
                workspace_id,
                name: n.to_string(),
            },
            (Some("component"), Some(_), Some(d)) => Change::Component {
                digest: d.to_string(),
            },
            _ => Change::All,
        }
    }
}

/// The counter, and whether changes made elsewhere are being heard.
#[derive(Debug)]
pub(crate) struct AccessEpoch {
    value: AtomicU64,
    /// False while a PostgreSQL replica is not subscribed to the channel: changes made through
    /// other replicas could go unseen, so nothing may be served from a cache.
    live: AtomicBool,
}

impl AccessEpoch {
    /// A counter at 0; `live` when no other process can change access (SQLite).
    pub fn new(live: bool) -> Arc<Self> {
        Arc::new(Self {
            value: AtomicU64::new(0),
            live: AtomicBool::new(live),
        })
    }

    /// The current epoch, or `None` while changes made elsewhere could go unheard.
    pub fn current(&self) -> Option<u64> {
        self.live
            .load(Ordering::Acquire)
            .then(|| self.value.load(Ordering::Acquire))
    }

    /// Moves the epoch: everything cached under an earlier one is stale. Called after the
    /// change is committed, so a reader that sees the new epoch also sees the change.
    pub fn bump(&self) {
        self.value.fetch_add(1, Ordering::AcqRel);
    }

    fn set_live(&self, on: bool) {
        self.live.store(on, Ordering::Release);
    }
}

/// Moves `epoch` on every access change another replica announces and passes the other
/// changes to `changes`, until the pool closes; while not subscribed (startup, a lost
/// connection) the epoch is not live, and once subscribed again everything counts as changed.
pub(crate) async fn listen(
    pool: PgPool,
    epoch: Arc<AccessEpoch>,
    changes: tokio::sync::broadcast::Sender<Change>,
) {
    loop {
        let mut listener = match subscribe(&pool).await {
            Ok(l) => l,
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for access changes of other replicas; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // anything may have changed while nobody listened
        epoch.bump();
        epoch.set_live(true);
        let _ = changes.send(Change::All);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) if n.channel() == CHANGES => {
                    let _ = changes.send(Change::parse(n.payload()));
                }
                Ok(Some(_)) => epoch.bump(),
                // the connection was lost and is back: notifications in between may be lost
                Ok(None) => {
                    epoch.bump();
                    let _ = changes.send(Change::All);
                }
                Err(sqlx::Error::PoolClosed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "lost the listener for access changes; reconnecting");
                    break;
                }
            }
        }
        epoch.set_live(false);
        epoch.bump();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([CHANNEL, CHANGES]).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_payloads_read_back() {
        for c in [
            Change::Secret {
                workspace_id: 3,
                name: "s3-secret-key".into(),
            },
            Change::Endpoint {
                workspace_id: 1,
                name: "iris".into(),
            },
            Change::Component {
                digest: "ab".repeat(32),
            },
            Change::All,
        ] {
            assert_eq!(Change::parse(&c.payload()), c);
        }
        assert_eq!(Change::parse("something new 1 2"), Change::All);
    }

    #[test]
    fn the_epoch_moves_and_is_withheld_until_live() {
        let e = AccessEpoch::new(true);
        let a = e.current().unwrap();
        e.bump();
        assert!(e.current().unwrap() > a);
        let pg = AccessEpoch::new(false);
        assert_eq!(pg.current(), None);
        pg.set_live(true);
        assert!(pg.current().is_some());
    }
}
