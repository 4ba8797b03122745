-- The component registry and per-experiment artifact datastores.
CREATE TABLE components (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    api_version TEXT,
    manifest TEXT NOT NULL,
    builtin INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (workspace_id, name, version)
);
CREATE INDEX components_digest ON components (digest);

ALTER TABLE experiments ADD COLUMN datastore_id INTEGER REFERENCES datastores(id);
