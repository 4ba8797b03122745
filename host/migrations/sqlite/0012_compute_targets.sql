-- Compute targets: instances of a target plugin with the operator's grants (one host, named
-- secrets, config) and how their workers reach this host.
CREATE TABLE compute_targets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    component TEXT NOT NULL,
    version TEXT NOT NULL,
    definition TEXT NOT NULL,
    description TEXT,
    created_at INTEGER NOT NULL,
    created_by TEXT,
    UNIQUE (workspace_id, name)
);
-- The engine's handle of a job's current attempt and the job token its worker holds, so a
-- restarted host reconciles the attempt with its engine instead of losing it.
ALTER TABLE jobs ADD COLUMN handle TEXT;
ALTER TABLE jobs ADD COLUMN worker_token TEXT;
ALTER TABLE jobs ADD COLUMN engine_state TEXT;
