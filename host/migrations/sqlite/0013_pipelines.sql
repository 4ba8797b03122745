-- Pipelines: immutable published versions (one per distinct content), the steps of each
-- pipeline run, the step cache (by content key), schedules and their ticks.
CREATE TABLE pipelines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    spec TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    description TEXT,
    created_at INTEGER NOT NULL,
    created_by TEXT,
    UNIQUE (workspace_id, name, version),
    UNIQUE (workspace_id, name, content_hash)
);
CREATE TABLE pipeline_steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    workspace_id INTEGER NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    child_job TEXT,
    cache_key TEXT,
    reused_from TEXT,
    outputs TEXT,
    error TEXT,
    retry_at INTEGER,
    started_at INTEGER,
    ended_at INTEGER,
    UNIQUE (job_id, step)
);
CREATE INDEX pipeline_steps_key ON pipeline_steps (workspace_id, cache_key);
CREATE TABLE step_cache (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    cache_key TEXT NOT NULL,
    job_uuid TEXT NOT NULL,
    step TEXT NOT NULL,
    run_id TEXT,
    outputs TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX step_cache_key ON step_cache (workspace_id, cache_key, id);
CREATE TABLE schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    enabled_at INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT,
    UNIQUE (workspace_id, name)
);
CREATE TABLE schedule_ticks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    tick INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    job_uuid TEXT,
    detail TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (schedule_id, tick)
);
-- Where a job came from (`step:<pipeline job>:<step>:<attempt>`, `schedule:<id>:<tick>`):
-- unique, so a restarted or second host never submits the same step attempt or tick twice.
ALTER TABLE jobs ADD COLUMN origin TEXT;
CREATE UNIQUE INDEX jobs_origin ON jobs (origin);
ALTER TABLE jobs ADD COLUMN parent_job TEXT;
