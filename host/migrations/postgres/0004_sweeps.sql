-- The persisted state of sweep and AutoML jobs: the sampler's snapshot and every trial, so a
-- restarted host resumes a sweep without repeating finished trials.
CREATE TABLE sweep_states (
    job_id BIGINT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
