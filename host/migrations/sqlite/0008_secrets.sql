-- The workspace secret store (key vault). Values are sealed with XChaCha20-Poly1305 under the
-- host's master key; the associated data binds each ciphertext to `workspace/name`.
CREATE TABLE secrets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    created_by TEXT,
    UNIQUE (workspace_id, name)
);

-- One row: a constant sealed under the master key, so a wrong key is refused at startup.
CREATE TABLE vault_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key_fingerprint TEXT NOT NULL,
    check_nonce BLOB NOT NULL,
    check_ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
