//! Unit tests of the pure parts, with the JSON shapes Ray 2.60 answered (scripts/engines/ray.sh).
use super::*;

fn s(v: &str) -> String {
    v.to_string()
}

fn job(env: &[(&str, &str)]) -> JobRequest {
    JobRequest {
        job_id: s("j42"),
        attempt: 2,
        run_id: s("r1"),
        argv: vec![
            s("/opt/atrium"),
            s("worker"),
            s("run"),
            s("--job"),
            s("j42"),
        ],
        env: env.iter().map(|(k, v)| (s(k), s(v))).collect(),
        resources: Resources {
            cpus: 1.5,
            memory_mb: 512,
            gpus: 0,
        },
        labels: vec![(s("workspace"), s("w1")), (s("job-name"), s("train it"))],
        timeout_secs: Some(60),
    }
}

#[test]
fn quoting() {
    assert_eq!(shell_quote("worker"), "worker");
    assert_eq!(shell_quote("/opt/x-1.2/bin"), "/opt/x-1.2/bin");
    assert_eq!(shell_quote("http://h:8080"), "http://h:8080");
    assert_eq!(shell_quote(""), "''");
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("$HOME"), "'$HOME'");
    assert_eq!(shell_quote("a=b"), "'a=b'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote("`x`;|&*?"), "'`x`;|&*?'");
}

#[test]
fn entrypoint_execs_env_with_the_quoted_argv() {
    let argv = vec![s("/bin/echo"), s("a b"), s("it's")];
    assert_eq!(
        entrypoint(&argv, &[]).unwrap(),
        r"exec /usr/bin/env /bin/echo 'a b' 'it'\''s'"
    );
    let e = entrypoint(
        &argv,
        &[(s("PATH"), s("/usr/bin:/bin")), (s("W"), s("a$b"))],
    )
    .unwrap();
    assert_eq!(
        e,
        r"exec /usr/bin/env 'PATH=/usr/bin:/bin' 'W=a$b' /bin/echo 'a b' 'it'\''s'"
    );
    assert!(matches!(
        entrypoint(&[], &[]),
        Err(PluginError::InvalidArgument(_))
    ));
    assert!(entrypoint(&[s("")], &[]).is_err());
    assert!(entrypoint(&[s("a\0b")], &[]).is_err());
    assert!(entrypoint(&[s("A=b")], &[]).is_err());
}

#[test]
fn env_pairs_dedupe_and_default_path() {
    let env: Vec<(String, String)> = [
        ("ATRIUM_TOKEN", "tok-1"),
        ("TOKEN", "old"),
        ("TOKEN", "new"),
    ]
    .iter()
    .map(|(k, v)| (s(k), s(v)))
    .collect();
    let pairs = env_pairs(&env, Some("/opt/bin:/bin")).unwrap();
    assert_eq!(
        pairs,
        vec![
            (s("ATRIUM_TOKEN"), s("tok-1")),
            (s("TOKEN"), s("new")),
            (s("PATH"), s("/opt/bin:/bin"))
        ]
    );
    let pairs = env_pairs(&[(s("PATH"), s("/x"))], Some("/ignored")).unwrap();
    assert_eq!(pairs, vec![(s("PATH"), s("/x"))]);
    for bad in [("", "x"), ("A=B", "x"), ("A", "x\0y")] {
        assert!(
            matches!(
                env_pairs(&[(s(bad.0), s(bad.1))], None),
                Err(PluginError::InvalidArgument(_))
            ),
            "{bad:?}"
        );
    }
}

/// Every value reaches the command exactly (the entrypoint run by /bin/sh as Ray does).
#[cfg(unix)]
#[test]
fn values_round_trip_through_sh() {
    let tricky = "a$HOME ${FOO} $$ `id` 'q' \"d\" \\n \\0101 %s %b é\n\n";
    let env = vec![
        (s("W"), s(tricky)),
        (s("PATH"), s("/usr/bin:/bin")),
        (s("PLAIN"), s("p")),
    ];
    let argv = vec![
        s("/bin/sh"),
        s("-c"),
        s(r#"printf '%s|%s|%s' "$W" "$PATH" "$PLAIN""#),
    ];
    let ep = entrypoint(&argv, &env).unwrap();
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&ep)
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{tricky}|/usr/bin:/bin|p")
    );
}

#[test]
fn submit_body_shape() {
    let b = submit_body(&job(&[("ATRIUM_TOKEN", "t"), ("PATH", "/bin")]), None).unwrap();
    assert_eq!(b["submission_id"], "atrium-j42-2");
    assert_eq!(
        b["entrypoint"],
        "exec /usr/bin/env 'ATRIUM_TOKEN=t' 'PATH=/bin' /opt/atrium worker run --job j42"
    );
    assert!(b.get("runtime_env").is_none());
    assert_eq!(b["entrypoint_num_cpus"], 1.5);
    assert_eq!(b["entrypoint_memory"], 512u64 << 20);
    assert!(b.get("entrypoint_num_gpus").is_none());
    assert_eq!(
        b["metadata"],
        json!({"workspace": "w1", "job-name": "train it"})
    );
    assert!(b.get("timeout_secs").is_none());

    let mut j = job(&[]);
    j.resources = Resources {
        cpus: 0.0,
        memory_mb: 0,
        gpus: 2,
    };
    j.labels.clear();
    let b = submit_body(&j, None).unwrap();
    let keys: Vec<&String> = b.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["entrypoint", "entrypoint_num_gpus", "submission_id"]);
    assert_eq!(b["entrypoint_num_gpus"], 2);
    j.resources.cpus = f32::NAN;
    assert!(
        submit_body(&j, None)
            .unwrap()
            .get("entrypoint_num_cpus")
            .is_none()
    );
    j.resources.cpus = -1.0;
    assert!(
        submit_body(&j, None)
            .unwrap()
            .get("entrypoint_num_cpus")
            .is_none()
    );

    for bad in ["", "a/b", "a b", "a\nb"] {
        j.job_id = s(bad);
        assert!(
            matches!(submit_body(&j, None), Err(PluginError::InvalidArgument(_))),
            "{bad:?}"
        );
    }
}

const TRACEBACK: &str = "Traceback (most recent call last):\n  File \"/v/ray/dashboard/modules/job/job_head.py\", line 374, in submit_job\n    raise RuntimeError(f\"Request failed with status code {resp.status}: {error_text}.\")\nRuntimeError: Request failed with status code 400: Traceback (most recent call last):\n  File \"/v/ray/dashboard/modules/job/job_agent.py\", line 45, in submit_job\n    submission_id = await self.get_job_manager().submit_job(\n                    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  File \"/v/ray/dashboard/modules/job/job_manager.py\", line 553, in submit_job\n    raise ValueError(\nValueError: Job with submission_id atrium-s1-1 already exists. Please use a different submission_id.\n.\n";

#[test]
fn errors_from_ray() {
    assert_eq!(
        error_excerpt(TRACEBACK),
        "ValueError: Job with submission_id atrium-s1-1 already exists. Please use a different submission_id."
    );
    assert!(is_duplicate(500, TRACEBACK));
    assert!(!is_duplicate(200, TRACEBACK));
    assert!(!is_duplicate(500, "Internal Server Error"));
    assert_eq!(
        error_excerpt("Job nope does not exist"),
        "Job nope does not exist"
    );
    assert_eq!(error_excerpt("  a\n\n b  "), "a b");
    let long = "x".repeat(1000);
    assert_eq!(error_excerpt(&long).len(), MAX_EXCERPT + "…".len());
    let bad_field = "Traceback (most recent call last):\n  File \"common.py\", line 445, in validate_request_type\n    return request_type(**json_data)\nTypeError: JobSubmitRequest.__init__() got an unexpected keyword argument 'bogus'\n";
    assert_eq!(
        error_excerpt(bad_field),
        "TypeError: JobSubmitRequest.__init__() got an unexpected keyword argument 'bogus'"
    );
}

#[test]
fn auth_errors() {
    assert!(auth_error(200, "http://h", true, "").is_none());
    assert!(auth_error(404, "http://h", true, "").is_none());
    let Some(PluginError::AccessDenied(m)) = auth_error(
        403,
        "http://h:8265",
        true,
        "Forbidden: Invalid authentication token",
    ) else {
        panic!()
    };
    assert!(
        m.contains("refused the token")
            && m.contains("http://h:8265")
            && m.contains("Invalid authentication token"),
        "{m}"
    );
    let Some(PluginError::AccessDenied(m)) = auth_error(
        401,
        "http://h:8265",
        false,
        "Unauthorized: Missing authentication token",
    ) else {
        panic!()
    };
    assert!(
        m.contains("requires a token") && m.contains("token_secret"),
        "{m}"
    );
}

#[test]
fn statuses() {
    let failed: Value = serde_json::from_str(r#"{"type": "SUBMISSION", "job_id": null, "submission_id": "f1", "driver_info": null, "status": "FAILED", "entrypoint": "echo oops >&2; exit 3", "message": "Job entrypoint command failed with exit code 3, last available logs (truncated to 20,000 chars):\noops\n", "error_type": "JOB_ENTRYPOINT_COMMAND_ERROR", "start_time": 1796346960332, "end_time": 1796346962380, "metadata": null, "runtime_env": null, "driver_agent_http_address": "http://127.0.0.1:52365", "driver_node_id": "3287", "driver_exit_code": 3}"#).unwrap();
    let st = job_status(&failed).unwrap();
    assert_eq!(st.state, JobState::Failed);
    assert_eq!(st.raw_state, "FAILED");
    assert_eq!(st.exit_code, Some(3));
    assert_eq!(
        st.message.as_deref(),
        Some(
            "JOB_ENTRYPOINT_COMMAND_ERROR: Job entrypoint command failed with exit code 3; last output:\noops"
        )
    );
    let pending: Value = serde_json::from_str(r#"{"type": "SUBMISSION", "job_id": null, "submission_id": "gpu1", "driver_info": null, "status": "PENDING", "entrypoint": "true", "message": "Job has not started yet. It may be waiting for resources (CPUs, GPUs, memory, custom resources) to become available.", "error_type": null, "start_time": 1796346958000, "end_time": null, "metadata": null, "runtime_env": null, "driver_agent_http_address": null, "driver_node_id": null, "driver_exit_code": null}"#).unwrap();
    let st = job_status(&pending).unwrap();
    assert_eq!(st.state, JobState::Queued);
    assert_eq!(st.exit_code, None);
    assert!(st.message.unwrap().starts_with("Job has not started yet"));
    for (raw, state) in [
        ("RUNNING", JobState::Running),
        ("SUCCEEDED", JobState::Succeeded),
        ("STOPPED", JobState::Canceled),
        ("SOMETHING_NEW", JobState::Unknown),
    ] {
        let st =
            job_status(&json!({"status": raw, "message": null, "driver_exit_code": 0})).unwrap();
        assert_eq!(st.state, state);
        assert_eq!(st.raw_state, raw);
        assert_eq!(st.message, None);
        assert_eq!(st.exit_code, Some(0));
    }
    let long = job_status(&json!({"status": "FAILED", "message": "é".repeat(600)})).unwrap();
    assert!(long.message.unwrap().len() <= MAX_MESSAGE + "…".len());
    assert!(job_status(&json!({"message": "x"})).is_err());
    assert_eq!(
        job_status(&json!({"status": "FAILED", "driver_exit_code": 1_i64 << 40}))
            .unwrap()
            .exit_code,
        Some(i32::MAX)
    );
    let f = forgotten("atrium-j-1");
    assert_eq!(f.state, JobState::Unknown);
    assert!(
        f.message
            .unwrap()
            .contains("no longer knows job atrium-j-1")
    );
}

#[test]
fn failed_messages_keep_the_last_output() {
    let head = "Job entrypoint command failed with exit code 7";
    let m = format!(
        "{head}, last available logs (truncated to 20,000 chars):\n2026-12-04 01:47:55,758\tINFO job_manager.py:581 -- Runtime env is setting up.\nRunning entrypoint for job atrium-jobA-1: {} exec /bin/sh\nline 1\nline 2\n",
        "x".repeat(2000)
    );
    assert_eq!(
        without_ray_lines(&m, MAX_MESSAGE),
        format!("{head}; last output:\nline 1\nline 2")
    );
    let many: String = (0..500).map(|i| format!("out {i}\n")).collect();
    let m = format!("{head}, last available logs (truncated to 20,000 chars):\n{many}");
    let got = without_ray_lines(&m, MAX_MESSAGE);
    assert!(got.len() <= MAX_MESSAGE, "{}", got.len());
    assert!(
        got.starts_with(&format!("{head}; last output:\nout ")),
        "{got}"
    );
    assert!(got.ends_with("out 498\nout 499"), "{got}");
    let one_long = format!(
        "{head}, last available logs (truncated to 20,000 chars):\n{}",
        "é".repeat(1000)
    );
    let got = without_ray_lines(&one_long, MAX_MESSAGE);
    assert!(
        got.len() <= MAX_MESSAGE && got.ends_with('é'),
        "{}",
        got.len()
    );
    let only_ray = format!(
        "{head}, last available logs (truncated to 20,000 chars):\nRunning entrypoint for job j: x\n"
    );
    assert_eq!(without_ray_lines(&only_ray, MAX_MESSAGE), head);
    assert_eq!(
        without_ray_lines("Job was intentionally stopped.", MAX_MESSAGE),
        "Job was intentionally stopped."
    );
    let full = job_status(&json!({"status": "FAILED", "message": m, "error_type": "JOB_ENTRYPOINT_COMMAND_ERROR", "driver_exit_code": 7})).unwrap();
    assert!(full.message.unwrap().ends_with("out 499"));
}

#[test]
fn logs_offsets() {
    let body = br#"{"logs": "Running entrypoint for job t1: /bin/echo hi\nhi\n"}"#;
    let all = logs_from(body, 0).unwrap();
    assert_eq!(all, b"Running entrypoint for job t1: /bin/echo hi\nhi\n");
    assert_eq!(logs_from(body, 4).unwrap(), &all[4..]);
    assert_eq!(logs_from(body, all.len() as u64).unwrap(), b"");
    assert_eq!(logs_from(body, u64::MAX).unwrap(), b"");
    assert_eq!(logs_from(br#"{"logs": ""}"#, 0).unwrap(), b"");
    assert!(logs_from(b"nope", 0).is_err());
    assert!(logs_from(br#"{"logs": 3}"#, 0).is_err());
}

const CLUSTER: &str = r#"{"result": true, "msg": "Got cluster status.", "data": {"autoscalingStatus": "...", "autoscalingError": null, "clusterStatus": {"gcsRequestTime": 0.0017, "time": 1796346803.48, "monitorPid": 13280, "loadMetricsReport": {"usage": {"objectStoreMemory": [0.0, 6770772787.0], "node:InternalHead": [0.0, 1.0], "node:127.0.0.1": [0.0, 1.0], "CPU": [0.5, 2.0], "memory": [104857600.0, 15798469837.0]}, "resourceDemand": [], "pgDemand": [], "requestDemand": [], "nodeTypes": [], "headIp": null}}}}"#;

#[test]
fn describe_pool() {
    let cluster: Value = serde_json::from_str(CLUSTER).unwrap();
    let jobs = json!([{"status": "PENDING"}, {"status": "RUNNING"}, {"status": "PENDING"}, {"status": "SUCCEEDED"}]);
    let p = pool(&cluster, &jobs).unwrap();
    assert_eq!(p.name, "default");
    assert_eq!(p.capacity.cpus, 2.0);
    assert_eq!(p.capacity.memory_mb, 15066);
    assert_eq!(p.capacity.gpus, 0);
    assert_eq!(p.available.cpus, 1.5);
    assert_eq!(p.available.memory_mb, 14966);
    assert_eq!(p.queued_jobs, 2);
    let gpus = json!({"data": {"clusterStatus": {"loadMetricsReport": {"usage": {"CPU": [0, 8], "GPU": [1.0, 4.0]}}}}});
    let p = pool(&gpus, &json!([])).unwrap();
    assert_eq!((p.capacity.gpus, p.available.gpus), (4, 3));
    assert_eq!(p.queued_jobs, 0);
    assert!(
        pool(&json!({"result": true, "data": {}}), &jobs)
            .unwrap_err()
            .contains("not reported")
    );
    assert!(pool(&cluster, &json!({})).is_err());
}

#[test]
fn settings() {
    let cfg = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| s(v))
    };
    let no_secret = |_: &str| -> Result<String, PluginError> { panic!("no secret asked") };
    let st = Settings::load(cfg(&[("url", " http://127.0.0.1:8265/ ")]), no_secret).unwrap();
    assert_eq!(
        st,
        Settings {
            url: s("http://127.0.0.1:8265"),
            token: None,
            path: None
        }
    );
    let Err(PluginError::InvalidArgument(m)) = Settings::load(cfg(&[]), no_secret) else {
        panic!()
    };
    assert!(m.contains("'url'"), "{m}");
    for bad in [
        "127.0.0.1:8265",
        "ftp://h",
        "http://",
        "http:///x",
        "http://h?x=1",
        "http://h x",
    ] {
        let pairs: &'static [(&'static str, &'static str)] =
            Box::leak(vec![("url", bad)].into_boxed_slice());
        let Err(PluginError::InvalidArgument(m)) = Settings::load(cfg(pairs), no_secret) else {
            panic!("{bad}")
        };
        assert!(m.contains("'url'"), "{m}");
    }
    let secret = |n: &str| match n {
        "ray" => Ok(s("abc123\n")),
        "bearer" => Ok(s("Bearer abc123")),
        "empty" => Ok(s(" ")),
        _ => Err(PluginError::AccessDenied(s("not granted"))),
    };
    let st = Settings::load(
        cfg(&[
            ("url", "https://ray.local/"),
            ("token_secret", "ray"),
            ("path", "/opt/bin:/bin"),
        ]),
        secret,
    )
    .unwrap();
    assert_eq!(st.url, "https://ray.local");
    assert_eq!(st.token.as_deref(), Some("abc123"));
    assert_eq!(st.path.as_deref(), Some("/opt/bin:/bin"));
    let st = Settings::load(
        cfg(&[("url", "http://h"), ("token_secret", "bearer")]),
        secret,
    )
    .unwrap();
    assert_eq!(st.token.as_deref(), Some("abc123"));
    let Err(PluginError::AccessDenied(m)) = Settings::load(
        cfg(&[("url", "http://h"), ("token_secret", "other")]),
        secret,
    ) else {
        panic!()
    };
    assert!(
        m.contains("'token_secret'") && m.contains("'other'") && m.contains("not granted"),
        "{m}"
    );
    let Err(PluginError::InvalidArgument(m)) = Settings::load(
        cfg(&[("url", "http://h"), ("token_secret", "empty")]),
        secret,
    ) else {
        panic!()
    };
    assert!(m.contains("'token_secret'"), "{m}");
    // an empty token_secret is no token
    let st = Settings::load(cfg(&[("url", "http://h"), ("token_secret", "")]), no_secret).unwrap();
    assert_eq!(st.token, None);
}

#[test]
fn urls() {
    assert_eq!(path_segment("atrium-j42-2"), "atrium-j42-2");
    assert_eq!(path_segment("a b/c?é"), "a%20b%2Fc%3F%C3%A9");
    assert_eq!(submission_id("abc", 3), "atrium-abc-3");
}
