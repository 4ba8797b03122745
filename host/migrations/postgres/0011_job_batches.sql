-- Event batches a worker reported for an attempt of a job, so a retried batch is stored once.
CREATE TABLE job_batches (
    job_id BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt BIGINT NOT NULL,
    batch BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, attempt, batch)
);
