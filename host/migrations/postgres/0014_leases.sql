-- Job leases: the replica that claimed a job and until when its claim holds. A replica renews
-- the leases of the jobs it runs; another may take over a job whose lease has lapsed.
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until BIGINT;
CREATE INDEX jobs_owner ON jobs (owner);
-- Idempotency keys of logged batches (the `Idempotency-Key` header of log-batch): a batch a
-- client retries, on this replica or another, is stored once.
CREATE TABLE batch_keys (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, key)
);
-- The bytes of uploaded components (built-ins are in the binary): a replica that does not have
-- a component's file yet fetches it from here.
CREATE TABLE component_files (
    digest TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
-- Blobs about to become visible in a datastore, by the replica writing them: garbage collection
-- on another replica leaves them alone (for an hour) until something references them.
CREATE TABLE pending_blobs (
    datastore_id BIGINT NOT NULL,
    digest TEXT NOT NULL,
    replica TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (datastore_id, digest, replica)
);
