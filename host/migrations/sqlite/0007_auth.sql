-- Users, API tokens (stored as sha256 of the token only), role assignments per workspace,
-- anonymous read-only access per workspace, and the audit log.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    -- a token limited to one workspace and one role (job tokens); NULL: the user's own roles
    scope_workspace TEXT,
    scope_role TEXT
);
CREATE INDEX api_tokens_user ON api_tokens (user_name);

CREATE TABLE role_assignments (
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, user_name)
);

ALTER TABLE workspaces ADD COLUMN anonymous_read INTEGER NOT NULL DEFAULT 0;

-- Kept when a workspace is deleted: the record of who deleted it stays.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    workspace TEXT,
    actor TEXT NOT NULL,
    token_id TEXT,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    status INTEGER NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX audit_log_ws ON audit_log (workspace, id);

-- The built-in user that job tokens belong to (no roles: its tokens are workspace-scoped).
INSERT INTO users (name, is_admin, created_at) VALUES ('atrium-jobs', 0, 0);
