-- Event batches a worker reported for an attempt of a job, so a retried batch is stored once.
CREATE TABLE job_batches (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt, batch)
);
