//! The access epoch: a counter that moves on every change to users, API tokens, role
//! assignments and workspaces, so that caches of verified tokens and roles (`auth::cache`) know
//! when to read again. On PostgreSQL every change is also announced with `NOTIFY` and every
//! replica listens, so a change made through one replica moves the epoch of all of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};

/// The PostgreSQL notification channel for access changes.
pub(crate) const CHANNEL: &str = "atrium_access";

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

/// Moves `epoch` on every access change another replica announces, until the pool closes;
/// while not subscribed (startup, a lost connection) the epoch is not live.
pub(crate) async fn listen(pool: PgPool, epoch: Arc<AccessEpoch>) {
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
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => epoch.bump(),
                // the connection was lost and is back: notifications in between may be lost
                Ok(None) => epoch.bump(),
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
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

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
