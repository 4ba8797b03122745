-- Online endpoints and their deployments (model version + scorer component + settings).
-- Endpoint names are unique on the host: they are part of the scoring URL.
CREATE TABLE endpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    auth_mode TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    traffic TEXT NOT NULL,
    mirror TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE deployments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id INTEGER NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    scorer_name TEXT NOT NULL,
    scorer_version TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (endpoint_id, name)
);

CREATE INDEX deployments_model ON deployments (workspace_id, model_name, model_version);
CREATE INDEX deployments_scorer ON deployments (workspace_id, scorer_name, scorer_version);
