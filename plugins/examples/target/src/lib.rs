//! A compute-target plugin: describes a fixed pool and keeps submitted jobs queued in its own
//! memory. A real target would call its scheduler (host from config `scheduler`) over wasi:http.

use std::cell::RefCell;

use atrium_sdk::target::atrium::plugin::config;
use atrium_sdk::target::atrium::plugin::types::PluginError;
use atrium_sdk::target::exports::atrium::plugin::compute_target::{Guest, JobRequest, JobState, Resources};

thread_local! {
    static JOBS: RefCell<Vec<(String, JobState)>> = const { RefCell::new(Vec::new()) };
}

pub struct Plugin;

impl Guest for Plugin {
    fn describe() -> Vec<Resources> {
        vec![Resources { cpus: 8.0, memory_mb: 32 << 10, gpus: 0 }]
    }

    fn submit(job: JobRequest) -> Result<String, PluginError> {
        let scheduler = config::get("scheduler").unwrap_or_else(|| "local".into());
        let handle = format!("{scheduler}/{}", job.job_id);
        JOBS.with(|j| j.borrow_mut().push((handle.clone(), JobState::Queued)));
        Ok(handle)
    }

    fn status(handle: String) -> Result<(JobState, Option<String>), PluginError> {
        JOBS.with(|j| {
            j.borrow()
                .iter()
                .find(|(h, _)| *h == handle)
                .map(|(_, s)| (*s, None))
                .ok_or_else(|| PluginError::NotFound(handle.clone()))
        })
    }

    fn cancel(handle: String) -> Result<(), PluginError> {
        JOBS.with(|j| {
            let mut jobs = j.borrow_mut();
            let job = jobs.iter_mut().find(|(h, _)| *h == handle).ok_or_else(|| PluginError::NotFound(handle.clone()))?;
            job.1 = JobState::Canceled;
            Ok(())
        })
    }
}

atrium_sdk::export_target!(Plugin);
