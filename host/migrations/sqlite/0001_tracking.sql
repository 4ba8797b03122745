-- Workspaces, datastores and experiment tracking (SQLite).
CREATE TABLE workspaces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);

CREATE TABLE datastores (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE experiments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    name TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    last_update_time INTEGER NOT NULL,
    UNIQUE (workspace_id, number),
    UNIQUE (workspace_id, name)
);

CREATE TABLE experiment_tags (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time INTEGER,
    lifecycle_stage TEXT NOT NULL,
    deleted_time INTEGER,
    parent_run_id TEXT
);
-- (experiment, stage, start_time) serves the default order of searches and lets a filtered scan
-- skip table lookups for runs that do not match.
CREATE INDEX runs_experiment_start ON runs (experiment_id, lifecycle_stage, start_time DESC, id);
CREATE INDEX runs_workspace_start ON runs (workspace_id, lifecycle_stage, start_time DESC, id);

CREATE TABLE params (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX params_key_value ON params (key, value, run_id);

CREATE TABLE tags (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX tags_key_value ON tags (key, value, run_id);

-- Append-only metric history in chunks: one row per (run, key, logged batch) holding the
-- points packed as little-endian (step i64, timestamp i64, value f64) triples. A 1000-point
-- log-batch over 10 keys writes 10 rows instead of 1000, which is what makes ingest fast; a
-- history read decodes the chunks of one (run, key) and sorts by step. NaN survives as its bits.
-- No foreign key: the hot insert path skips the check, and purges delete history explicitly.
CREATE TABLE metric_chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    points INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX metric_chunks_run_key ON metric_chunks (run_id, key, id);

CREATE TABLE latest_metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value REAL,
    is_nan INTEGER NOT NULL,
    step INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX latest_metrics_key_value ON latest_metrics (key, is_nan, value, run_id);

CREATE TABLE artifacts (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    datastore_id INTEGER NOT NULL REFERENCES datastores(id),
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, path)
);
CREATE INDEX artifacts_digest ON artifacts (datastore_id, digest);
