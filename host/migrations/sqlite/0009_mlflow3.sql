-- MLflow 3: logged models (with params, tags, metrics and artifacts of their own), run inputs
-- (datasets and models) and run outputs (models), and user-given experiment artifact locations.

-- NULL: the workspace datastore (`mlflow-artifacts:/<number>`); else the URI the client gave.
ALTER TABLE experiments ADD COLUMN artifact_location TEXT;

CREATE TABLE logged_models (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- the public id, `m-` + 32 hex digits
    uuid TEXT NOT NULL UNIQUE,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    model_type TEXT,
    -- the source run's public id; not a foreign key: the model outlives the run
    source_run_id TEXT,
    status TEXT NOT NULL,
    status_message TEXT,
    lifecycle_stage TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX logged_models_experiment ON logged_models (experiment_id, lifecycle_stage, created_at DESC);

CREATE TABLE logged_model_params (
    model_id INTEGER NOT NULL REFERENCES logged_models(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE logged_model_tags (
    model_id INTEGER NOT NULL REFERENCES logged_models(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

-- Metrics logged with a model id (also in the run's own history).
CREATE TABLE logged_model_metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id INTEGER NOT NULL REFERENCES logged_models(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value REAL,
    is_nan INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    step INTEGER NOT NULL,
    run_id TEXT,
    dataset_name TEXT,
    dataset_digest TEXT
);
CREATE INDEX logged_model_metrics_model ON logged_model_metrics (model_id, key);

CREATE TABLE logged_model_artifacts (
    model_id INTEGER NOT NULL REFERENCES logged_models(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    datastore_id INTEGER NOT NULL REFERENCES datastores(id),
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (model_id, path)
);
CREATE INDEX logged_model_artifacts_digest ON logged_model_artifacts (datastore_id, digest);

-- MLflow datasets, one per (experiment, name, digest), as MLflow keys them.
CREATE TABLE mlflow_datasets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source TEXT NOT NULL,
    schema TEXT,
    profile TEXT,
    -- the Atrium dataset version with this content, when the digests match (`name:version`)
    atrium_version TEXT,
    UNIQUE (experiment_id, name, digest)
);

CREATE TABLE run_dataset_inputs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    dataset_id INTEGER NOT NULL REFERENCES mlflow_datasets(id) ON DELETE CASCADE,
    -- input tags (e.g. mlflow.data.context) as a JSON array of [key, value] pairs, in order
    tags TEXT NOT NULL,
    -- the `mlflow.data.context` input tag, for search (`datasets.context = 'training'`)
    context TEXT,
    position INTEGER NOT NULL,
    PRIMARY KEY (run_id, dataset_id)
);

-- Logged models a run read (inputs) or produced (outputs, with the step).
CREATE TABLE run_model_links (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    model_uuid TEXT NOT NULL,
    direction TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    position INTEGER NOT NULL,
    PRIMARY KEY (run_id, direction, model_uuid)
);

-- The logged model a registered model version came from (`m-...`), when it did.
ALTER TABLE model_versions ADD COLUMN logged_model_id TEXT;
