//! Verified tokens and roles, kept in memory so that a request costs no read of the store: an
//! entry is reused only while the store's access epoch has not moved since it was read (any
//! change of users, tokens, roles or workspaces moves it: on this host at once, from another
//! replica sharing PostgreSQL when its notification arrives) and for [`MAX_AGE`] at most.
//! Expiry is checked on every use.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::{Identity, Role};
use crate::workspace::Millis;

/// The longest a cached verification is reused without reading the store: the bound on how late
/// a change is seen when its notification from another replica is lost.
pub const MAX_AGE: Duration = Duration::from_secs(2);

/// Most entries per cache; a full cache starts over (only valid tokens are cached).
const MAX_ENTRIES: usize = 10_000;

/// A token that was valid (known, not revoked) when read at `epoch`.
struct Verified {
    identity: Identity,
    expires_at: Option<Millis>,
    epoch: u64,
    at: Instant,
}

/// A user's role on a workspace (none included) as read at `epoch`.
struct RoleEntry {
    role: Option<Role>,
    epoch: u64,
    at: Instant,
}

/// The caches of one host.
#[derive(Default)]
pub(crate) struct AuthCache {
    /// SHA-256 of the token → its verification.
    tokens: RwLock<HashMap<[u8; 32], Verified>>,
    /// user → workspace → role.
    roles: RwLock<HashMap<String, HashMap<String, RoleEntry>>>,
}

fn fresh(entry_epoch: u64, at: Instant, epoch: u64) -> bool {
    entry_epoch == epoch && at.elapsed() < MAX_AGE
}

impl AuthCache {
    /// The identity of a token verified under `epoch`, with its expiry.
    pub fn token(&self, digest: &[u8; 32], epoch: u64) -> Option<(Identity, Option<Millis>)> {
        let map = self.tokens.read().expect("token cache");
        let v = map.get(digest)?;
        fresh(v.epoch, v.at, epoch).then(|| (v.identity.clone(), v.expires_at))
    }

    /// Keeps a token found valid by a read made at `epoch` (taken before the read).
    pub fn put_token(
        &self,
        digest: [u8; 32],
        identity: Identity,
        expires_at: Option<Millis>,
        epoch: u64,
    ) {
        let mut map = self.tokens.write().expect("token cache");
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            digest,
            Verified {
                identity,
                expires_at,
                epoch,
                at: Instant::now(),
            },
        );
    }

    /// A user's role on a workspace read under `epoch` (`Some(None)`: known to hold none).
    pub fn role(&self, user: &str, workspace: &str, epoch: u64) -> Option<Option<Role>> {
        let map = self.roles.read().expect("role cache");
        let e = map.get(user)?.get(workspace)?;
        fresh(e.epoch, e.at, epoch).then_some(e.role)
    }

    /// Keeps a role read at `epoch` (taken before the read).
    pub fn put_role(&self, user: &str, workspace: &str, role: Option<Role>, epoch: u64) {
        let mut map = self.roles.write().expect("role cache");
        if map.values().map(HashMap::len).sum::<usize>() >= MAX_ENTRIES {
            map.clear();
        }
        map.entry(user.to_string()).or_default().insert(
            workspace.to_string(),
            RoleEntry {
                role,
                epoch,
                at: Instant::now(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> Identity {
        Identity {
            user: "ann".into(),
            admin: false,
            token_id: "tok_1".into(),
            scope: None,
        }
    }

    #[test]
    fn entries_serve_only_their_epoch() {
        let c = AuthCache::default();
        let d = [7u8; 32];
        assert!(c.token(&d, 1).is_none());
        c.put_token(d, ann(), Some(5), 1);
        assert_eq!(c.token(&d, 1), Some((ann(), Some(5))));
        // any access change moves the epoch: the entry is not used again
        assert!(c.token(&d, 2).is_none());
        assert!(c.token(&[8u8; 32], 1).is_none());

        assert_eq!(c.role("ann", "a", 1), None);
        c.put_role("ann", "a", Some(Role::Reader), 1);
        c.put_role("ann", "b", None, 1);
        assert_eq!(c.role("ann", "a", 1), Some(Some(Role::Reader)));
        assert_eq!(c.role("ann", "b", 1), Some(None));
        assert_eq!(c.role("ann", "a", 2), None);
        assert_eq!(c.role("bob", "a", 1), None);
    }

    #[test]
    fn entries_expire_after_max_age() {
        let c = AuthCache::default();
        let d = [1u8; 32];
        c.put_token(d, ann(), None, 3);
        c.tokens.write().unwrap().get_mut(&d).unwrap().at -= MAX_AGE;
        assert!(c.token(&d, 3).is_none());
        c.put_role("ann", "a", Some(Role::Owner), 3);
        c.roles
            .write()
            .unwrap()
            .get_mut("ann")
            .unwrap()
            .get_mut("a")
            .unwrap()
            .at -= MAX_AGE;
        assert_eq!(c.role("ann", "a", 3), None);
    }
}
