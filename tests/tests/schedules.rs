//! Schedules against the real binary, with the injected clock (`--no-scheduler` and
//! `POST /api/v1/scheduler/tick`): validation, one run per tick (SQLite and PostgreSQL), catch-up
//! (`latest`, `none`, `all` bounded), DST in America/New_York (spring forward and fall back),
//! overlap (`skip`, `queue`, `allow`), two hosts on one PostgreSQL firing each tick once, and
//! enable, disable and delete.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atrium_tests::{Backend, Http, Server, drop_pg_database, fresh_pg_database};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";
const FLAGS: &[&str] = &[
    "--no-scheduler",
    "--job-slots",
    "2",
    "--threads-per-slot",
    "1",
];
const HOUR: i64 = 3600;

// ---------------------------------------------------------------- time

/// Days since 1970-01-01 → (year, month, day) (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of a UTC wall time.
fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64) -> i64 {
    days_from_civil(y, mo, d) * 86_400 + h * HOUR + mi * 60
}

/// RFC 3339 in UTC as the server prints it (`2027-03-14T07:00:00Z`).
fn fmt(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The next whole hour after a day from now: a tick safely after any schedule's creation.
fn base_hour() -> i64 {
    ((now_secs() + 86_400) / HOUR + 1) * HOUR
}

#[test]
fn time_helpers_round_trip() {
    assert_eq!(fmt(0), "1970-01-01T00:00:00Z");
    assert_eq!(fmt(utc(2027, 3, 14, 7, 0)), "2027-03-14T07:00:00Z");
    assert_eq!(utc(2027, 3, 14, 7, 0), 1_805_007_600);
    assert_eq!(fmt(utc(2024, 2, 29, 23, 59) + 59), "2024-02-29T23:59:59Z");
}

// ---------------------------------------------------------------- servers

/// A test server on its own data directory (and, for PostgreSQL, its own database).
struct Host {
    srv: Server,
    pg: Option<String>,
    _dir: tempfile::TempDir,
}

impl Host {
    fn start(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pg = (backend == Backend::Postgres).then(fresh_pg_database);
        let srv = Server::start_with_args(dir.path(), pg.clone(), FLAGS);
        Host { srv, pg, _dir: dir }
    }

    fn http(&self) -> Http {
        self.srv.http()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.srv.stop();
        if let Some(url) = &self.pg {
            drop_pg_database(url);
        }
    }
}

/// Drops a shared PostgreSQL database when the test ends (declare it before the servers).
struct PgDb(String);

impl Drop for PgDb {
    fn drop(&mut self) {
        drop_pg_database(&self.0);
    }
}

// ---------------------------------------------------------------- API helpers

/// The pipeline every test schedules: one command step that sleeps `secs`, then writes the
/// tick it was started for to its output `seen` (never served from the cache).
fn publish_nightly(h: &Http) {
    let r = h.post(
        &format!("{WS}/pipelines"),
        json!({
            "name": "nightly",
            "inputs": {"t": {"type": "string", "default": ""}, "secs": 0},
            "jobs": {"a": {
                "type": "command",
                "is_deterministic": false,
                "command": "sleep ${{parent.inputs.secs}}; printf '%s' '${{creation_context.trigger_time}}' > $ATRIUM_OUTPUTS/seen",
                "outputs": {"seen": {"type": "string"}}
            }}
        }),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["reference"], "nightly:1", "{}", r.json);
}

fn create(h: &Http, name: &str, body: Value) -> Value {
    let r = h.put(&format!("{WS}/schedules/{name}"), body);
    assert_eq!(r.status, 201, "creating schedule {name}: {}", r.json);
    r.json
}

fn cron(expr: &str) -> Value {
    json!({"type": "cron", "expression": expr})
}

/// One scheduler pass as of `at` (unix seconds).
fn pass(h: &Http, at: i64) -> Value {
    h.post("/api/v1/scheduler/tick", json!({"at": fmt(at)}))
        .ok()
}

/// `(submitted, skipped, queued, failed)` of a pass.
fn counts(p: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| p[k].as_u64().unwrap_or_else(|| panic!("no {k} in {p}"));
    (n("submitted"), n("skipped"), n("queued"), n("failed"))
}

fn schedule(h: &Http, name: &str) -> Value {
    h.get(&format!("{WS}/schedules/{name}")).ok()
}

/// The ticks of a schedule, oldest first: (tick, outcome, job).
fn ticks(h: &Http, name: &str) -> Vec<(String, String, Option<String>)> {
    let s = schedule(h, name);
    let mut v: Vec<_> = s["ticks"]
        .as_array()
        .unwrap_or_else(|| panic!("no ticks in {s}"))
        .iter()
        .map(|t| {
            (
                t["tick"].as_str().unwrap().to_string(),
                t["outcome"].as_str().unwrap().to_string(),
                t["job"].as_str().map(String::from),
            )
        })
        .collect();
    v.reverse();
    v
}

/// (tick, outcome) pairs, oldest first.
fn outcomes(h: &Http, name: &str) -> Vec<(String, String)> {
    ticks(h, name).into_iter().map(|(t, o, _)| (t, o)).collect()
}

fn all_runs(h: &Http) -> Vec<Value> {
    h.get(&format!("{WS}/pipeline-runs?limit=500")).ok()["runs"]
        .as_array()
        .unwrap()
        .clone()
}

/// The runs a schedule started, oldest tick first.
fn runs_of(h: &Http, name: &str) -> Vec<Value> {
    let mut v: Vec<Value> = all_runs(h)
        .into_iter()
        .filter(|r| r["schedule"] == name)
        .collect();
    v.sort_by_key(|r| r["trigger_time"].as_str().unwrap_or("").to_string());
    v
}

/// The trigger times of a schedule's runs, oldest first.
fn triggers(h: &Http, name: &str) -> Vec<String> {
    runs_of(h, name)
        .iter()
        .map(|r| r["trigger_time"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn run_of(h: &Http, id: &str) -> Value {
    h.get(&format!("{WS}/pipeline-runs/{id}")).ok()
}

fn ended(r: &Value) -> bool {
    matches!(
        r["state"].as_str(),
        Some("Completed" | "Failed" | "Canceled")
    )
}

/// Polls until the pipeline run ends; returns it.
fn wait_run(h: &Http, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = run_of(h, id);
        if ended(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} did not end in {secs} s: {r}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls until every pipeline run on the server has ended.
fn wait_all_ended(h: &Http, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let runs = all_runs(h);
        if runs.iter().all(ended) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "runs did not end in {secs} s: {:?}",
            runs.iter()
                .map(|r| (&r["id"], &r["state"]))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Cancels every run that has not ended (so that the server stops promptly).
fn cancel_all(h: &Http) {
    for r in all_runs(h).iter().filter(|r| !ended(r)) {
        let id = r["id"].as_str().unwrap();
        h.post(&format!("{WS}/pipeline-runs/{id}/cancel"), json!({}));
    }
}

fn strings(v: &[i64]) -> Vec<String> {
    v.iter().map(|&t| fmt(t)).collect()
}

// ---------------------------------------------------------------- tests

/// Invalid schedules are refused with a precise 4xx error and leave nothing stored.
#[test]
fn invalid_schedules_are_refused_and_nothing_is_stored() {
    let host = Host::start(Backend::Sqlite);
    let h = host.http();
    publish_nightly(&h);
    let ok = json!({"pipeline": "nightly@latest", "trigger": cron("0 * * * *")});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            with("trigger", cron("0 25 * * *")),
            400,
            "INVALID_PARAMETER_VALUE",
            "cron field 'hour' (2nd): '25' is out of range 0-23",
        ),
        (
            with("trigger", cron("0 * * *")),
            400,
            "INVALID_PARAMETER_VALUE",
            "cron",
        ),
        (
            with("time_zone", json!("Mars/Olympus_Mons")),
            400,
            "INVALID_PARAMETER_VALUE",
            "unknown time zone 'Mars/Olympus_Mons'",
        ),
        (
            with("pipeline", json!("ghost@latest")),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "ghost",
        ),
        (
            with("pipeline", json!("nightly:7")),
            404,
            "RESOURCE_DOES_NOT_EXIST",
            "nightly",
        ),
        (
            with("inputs", json!({"nope": 1})),
            400,
            "INVALID_PARAMETER_VALUE",
            "the pipeline has no input 'nope'",
        ),
        (
            with("inputs", json!({"secs": "soon"})),
            400,
            "INVALID_PARAMETER_VALUE",
            "input 'secs'",
        ),
        (
            with("max_concurrency", json!(11)),
            400,
            "INVALID_PARAMETER_VALUE",
            "max_concurrency must be between 1 and 10",
        ),
        (
            with("max_concurrency", json!(0)),
            400,
            "INVALID_PARAMETER_VALUE",
            "max_concurrency must be between 1 and 10",
        ),
        (
            with("end_time", json!("yesterday")),
            400,
            "INVALID_PARAMETER_VALUE",
            "end_time 'yesterday' is not an RFC 3339 time",
        ),
    ];
    for (body, status, code, msg) in &cases {
        let r = h.put(&format!("{WS}/schedules/bad"), body.clone());
        assert_eq!(r.status, *status, "{body} → {}", r.json);
        assert_eq!(r.code(), *code, "{body} → {}", r.json);
        assert!(
            r.message().contains(msg),
            "{body}: message {:?} lacks {msg:?}",
            r.message()
        );
    }
    // an unknown key and a bad enum value are malformed requests
    for body in [
        with("catchup", json!("sometimes")),
        with("colour", json!("red")),
    ] {
        let r = h.put(&format!("{WS}/schedules/bad"), body.clone());
        assert_eq!(r.status, 400, "{body} → {}", r.json);
    }
    let list = h.get(&format!("{WS}/schedules")).ok();
    assert_eq!(list["schedules"], json!([]), "{list}");
    assert_eq!(h.get(&format!("{WS}/schedules/bad")).status, 404);

    // the same request, valid, is stored once
    let v = create(&h, "good", ok.clone());
    assert_eq!(v["name"], "good");
    assert_eq!(v["enabled"], true);
    assert_eq!(v["next"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["ticks"], json!([]));
    let again = h.put(&format!("{WS}/schedules/good"), ok);
    assert_eq!(again.status, 409, "{}", again.json);
    assert_eq!(again.code(), "RESOURCE_ALREADY_EXISTS");
    let list = h.get(&format!("{WS}/schedules")).ok();
    let names: Vec<&str> = list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["good"]);
}

/// A due tick fires exactly one run, carrying its trigger time into the step (SQLite).
#[test]
fn a_tick_fires_exactly_once_sqlite() {
    fires_once(Backend::Sqlite);
}

/// A due tick fires exactly one run, carrying its trigger time into the step (PostgreSQL).
#[test]
fn a_tick_fires_exactly_once_postgres() {
    fires_once(Backend::Postgres);
}

fn fires_once(backend: Backend) {
    let host = Host::start(backend);
    let h = host.http();
    publish_nightly(&h);
    let hr = base_hour();
    let v = create(
        &h,
        "hourly",
        json!({"pipeline": "nightly@latest", "trigger": cron("0 * * * *")}),
    );
    assert_eq!(v["definition"]["pipeline"], "nightly@latest");
    // the latest due tick (the hourly ticks between creation and it are missed)
    let first = counts(&pass(&h, hr + 30));
    assert_eq!(first, (1, 0, 0, 0));
    assert_eq!(
        counts(&pass(&h, hr + 30)),
        (0, 0, 0, 0),
        "the same pass again"
    );
    assert_eq!(
        counts(&pass(&h, hr + 40)),
        (0, 0, 0, 0),
        "a later pass, same tick"
    );

    let runs = runs_of(&h, "hourly");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let run = wait_run(&h, &id, 120);
    assert_eq!(run["state"], "Completed", "{run}");
    assert_eq!(run["schedule"], "hourly");
    assert_eq!(run["trigger_time"], fmt(hr), "{run}");
    assert_eq!(run["pipeline"], "nightly:1");
    let step = &run["steps"][0];
    assert_eq!(step["state"], "Completed", "{run}");
    assert_eq!(step["outputs"]["seen"]["value"], fmt(hr), "{run}");

    let t = ticks(&h, "hourly");
    assert_eq!(
        t,
        vec![(fmt(hr), "Submitted".to_string(), Some(id.clone()))]
    );
    // the next ticks are after the last one fired
    let s = schedule(&h, "hourly");
    assert_eq!(s["next"][0], fmt(hr + HOUR), "{s}");
    assert_eq!(all_runs(&h).len(), 1);
}

/// Missed ticks: `latest` runs the newest, `none` runs none, `all` the newest `max_catchup_runs`.
#[test]
fn missed_ticks_follow_the_catchup_policy() {
    let host = Host::start(Backend::Sqlite);
    let h = host.http();
    publish_nightly(&h);
    let hr = base_hour();
    for (name, catchup, max) in [
        ("latest", "latest", None),
        ("none", "none", None),
        ("all", "all", None),
        ("all2", "all", Some(2)),
    ] {
        let mut body = json!({
            "pipeline": "nightly", "trigger": cron("0 * * * *"), "start_time": fmt(hr),
            "catchup": catchup,
        });
        if let Some(m) = max {
            body["max_catchup_runs"] = json!(m);
        }
        create(&h, name, body);
    }
    // on time: each fires its first tick once
    let p = pass(&h, hr + 30);
    assert_eq!(counts(&p), (4, 0, 0, 0), "{p}");
    assert_eq!(p["missed"], 0, "{p}");
    wait_all_ended(&h, 120);

    // three ticks due, the newest 30 minutes late
    let p = pass(&h, hr + 3 * HOUR + 1800);
    assert_eq!(counts(&p), (1 + 3 + 2, 0, 0, 0), "{p}");
    assert_eq!(p["missed"], 2 + 3 + 1, "{p}");
    wait_all_ended(&h, 180);

    // five more ticks due
    let p = pass(&h, hr + 8 * HOUR + 1800);
    assert_eq!(counts(&p), (1 + 5 + 2, 0, 0, 0), "{p}");
    assert_eq!(p["missed"], 4 + 5 + 3, "{p}");
    wait_all_ended(&h, 240);

    let at = |hs: &[i64]| strings(&hs.iter().map(|k| hr + k * HOUR).collect::<Vec<_>>());
    assert_eq!(triggers(&h, "latest"), at(&[0, 3, 8]));
    assert_eq!(triggers(&h, "none"), at(&[0]));
    assert_eq!(triggers(&h, "all"), at(&[0, 1, 2, 3, 4, 5, 6, 7, 8]));
    assert_eq!(triggers(&h, "all2"), at(&[0, 2, 3, 7, 8]));
    // every fired tick is Submitted, with the job that ran it; missed ticks leave no row
    for name in ["latest", "none", "all", "all2"] {
        let runs = runs_of(&h, name);
        let t = ticks(&h, name);
        assert_eq!(t.len(), runs.len(), "{name}: {t:?}");
        for ((tick, outcome, job), run) in t.iter().zip(&runs) {
            assert_eq!(outcome, "Submitted", "{name}: {t:?}");
            assert_eq!(Some(tick.as_str()), run["trigger_time"].as_str());
            assert_eq!(job.as_deref(), run["id"].as_str());
            assert_eq!(run["state"], "Completed", "{run}");
            assert_eq!(run["steps"][0]["outputs"]["seen"]["value"], tick.as_str());
        }
    }
    // a pass at the same time again changes nothing
    assert_eq!(counts(&pass(&h, hr + 8 * HOUR + 1800)), (0, 0, 0, 0));
}

/// DST in America/New_York: spring forward fires the skipped 02:30 at 03:00; fall back fires a
/// daily 01:30 once (second occurrence) and an hourly :30 in both repeated hours.
#[test]
fn dst_transitions_follow_dagster_rules() {
    let host = Host::start(Backend::Sqlite);
    let h = host.http();
    publish_nightly(&h);
    let ny = |expr: &str, catchup: &str, max: usize| {
        json!({
            "pipeline": "nightly:1", "trigger": cron(expr), "time_zone": "America/New_York",
            "catchup": catchup, "max_catchup_runs": max, "overlap": "allow", "max_concurrency": 10,
        })
    };
    let spring = create(&h, "spring", ny("30 2 * * *", "latest", 5));
    assert!(
        spring["describe"]
            .as_str()
            .unwrap()
            .contains("America/New_York"),
        "{spring}"
    );
    // one pass a day around 2027-03-14 (the first one runs only the latest due tick)
    for day in [13, 14, 15] {
        let p = pass(&h, utc(2027, 3, day, 12, 0));
        assert_eq!(counts(&p), (1, 0, 0, 0), "2027-03-{day}: {p}");
    }
    assert_eq!(
        triggers(&h, "spring"),
        [
            "2027-03-13T07:30:00Z",
            "2027-03-14T07:00:00Z",
            "2027-03-15T06:30:00Z"
        ]
    );
    assert_eq!(
        outcomes(&h, "spring")
            .iter()
            .map(|(_, o)| o.as_str())
            .collect::<Vec<_>>(),
        ["Submitted"; 3]
    );
    h.delete(&format!("{WS}/schedules/spring")).ok();

    // fall back on 2027-11-07: 01:00-02:00 local happens twice (05:00-07:00Z)
    create(&h, "fall-daily", ny("30 1 * * *", "all", 3));
    create(&h, "fall-hourly", ny("30 * * * *", "all", 5));
    let p = pass(&h, utc(2027, 11, 7, 8, 0));
    assert_eq!(counts(&p), (3 + 5, 0, 0, 0), "{p}");
    let daily = [
        "2027-11-05T05:30:00Z",
        "2027-11-06T05:30:00Z",
        "2027-11-07T06:30:00Z",
    ];
    let hourly = [
        "2027-11-07T03:30:00Z", // 23:30 EDT (11-06)
        "2027-11-07T04:30:00Z", // 00:30 EDT
        "2027-11-07T05:30:00Z", // 01:30 EDT
        "2027-11-07T06:30:00Z", // 01:30 EST
        "2027-11-07T07:30:00Z", // 02:30 EST
    ];
    let sub = |ts: &[&str]| -> Vec<(String, String)> {
        ts.iter()
            .map(|t| (t.to_string(), "Submitted".to_string()))
            .collect()
    };
    assert_eq!(outcomes(&h, "fall-daily"), sub(&daily));
    assert_eq!(outcomes(&h, "fall-hourly"), sub(&hourly));
    assert_eq!(triggers(&h, "fall-daily"), daily);
    assert_eq!(triggers(&h, "fall-hourly"), hourly);
    // the next daily tick is 01:30 EST on 11-08
    let s = schedule(&h, "fall-daily");
    assert_eq!(s["next"][0], "2027-11-08T06:30:00Z", "{s}");
    wait_all_ended(&h, 240);
}

/// Overlap: `skip` drops a tick while its run runs, `queue` starts it after, `allow` runs up to
/// `max_concurrency` at once.
#[test]
fn overlapping_ticks_follow_the_overlap_policy() {
    let host = Host::start(Backend::Sqlite);
    let h = host.http();
    publish_nightly(&h);
    let hr = base_hour();
    for (name, overlap) in [
        ("ov-skip", "skip"),
        ("ov-queue", "queue"),
        ("ov-allow", "allow"),
    ] {
        create(
            &h,
            name,
            json!({
                "pipeline": "nightly@latest", "trigger": cron("0 * * * *"), "start_time": fmt(hr),
                "inputs": {"secs": 120}, "overlap": overlap, "max_concurrency": 2,
            }),
        );
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let p = pass(&h, hr + 30);
        assert_eq!(counts(&p), (3, 0, 0, 0), "{p}");
        // the first runs still sleep
        let p = pass(&h, hr + HOUR + 30);
        assert_eq!(counts(&p), (1, 1, 1, 0), "{p}");
        let p = pass(&h, hr + 2 * HOUR + 30);
        assert_eq!(counts(&p), (0, 2, 1, 0), "{p}");

        let t = |k: i64| fmt(hr + k * HOUR);
        let o = |s: &str| s.to_string();
        assert_eq!(
            outcomes(&h, "ov-skip"),
            [
                (t(0), o("Submitted")),
                (t(1), o("Skipped")),
                (t(2), o("Skipped"))
            ]
        );
        assert_eq!(runs_of(&h, "ov-skip").len(), 1);
        let skip = schedule(&h, "ov-skip");
        assert!(
            skip["ticks"][0]["detail"]
                .as_str()
                .unwrap_or("")
                .contains("still running"),
            "{skip}"
        );
        assert_eq!(
            outcomes(&h, "ov-allow"),
            [
                (t(0), o("Submitted")),
                (t(1), o("Submitted")),
                (t(2), o("Skipped"))
            ]
        );
        let allow = schedule(&h, "ov-allow");
        assert!(
            allow["ticks"][0]["detail"]
                .as_str()
                .unwrap_or("")
                .contains("max_concurrency is 2"),
            "{allow}"
        );
        let allowed = runs_of(&h, "ov-allow");
        assert_eq!(allowed.len(), 2);
        assert!(allowed.iter().all(|r| !ended(r)), "{allowed:?}");
        assert_eq!(
            outcomes(&h, "ov-queue"),
            [
                (t(0), o("Submitted")),
                (t(1), o("Queued")),
                (t(2), o("Queued"))
            ]
        );
        let queued = runs_of(&h, "ov-queue");
        assert_eq!(queued.len(), 1);

        // nothing starts a queued tick while the run before it runs
        assert_eq!(counts(&pass(&h, hr + 2 * HOUR + 40)), (0, 0, 0, 0));
        let first = queued[0]["id"].as_str().unwrap().to_string();
        h.post(&format!("{WS}/pipeline-runs/{first}/cancel"), json!({}))
            .ok();
        let r = wait_run(&h, &first, 60);
        assert_eq!(r["state"], "Canceled", "{r}");
        // the oldest queued tick starts once it has ended, then the next waits for that one
        let p = pass(&h, hr + 2 * HOUR + 50);
        assert_eq!(counts(&p), (1, 0, 0, 0), "{p}");
        let q = ticks(&h, "ov-queue");
        assert_eq!(q[1].0, t(1));
        assert_eq!(q[1].1, "Submitted", "{q:?}");
        assert_eq!(q[2].1, "Queued", "{q:?}");
        let queued = runs_of(&h, "ov-queue");
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[1]["trigger_time"], t(1));
        assert_eq!(q[1].2.as_deref(), queued[1]["id"].as_str());
        assert_eq!(counts(&pass(&h, hr + 2 * HOUR + 55)), (0, 0, 0, 0));
        assert_eq!(runs_of(&h, "ov-skip").len(), 1);
        assert_eq!(runs_of(&h, "ov-allow").len(), 2);
    }));
    cancel_all(&h);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    wait_all_ended(&h, 60);
}

/// Two hosts on one PostgreSQL running the same passes at once start each tick's run once.
#[test]
fn two_hosts_fire_each_tick_once() {
    let db = PgDb(fresh_pg_database());
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = Server::start_with_args(dirs[0].path(), Some(db.0.clone()), FLAGS);
    let b = Server::start_with_args(dirs[1].path(), Some(db.0.clone()), FLAGS);
    // the bootstrap admin (and its token) lives in the shared database: the first host made it
    assert!(!a.token.is_empty());
    let ha = a.http();
    let hb = b.http_as(Some(&a.token));
    publish_nightly(&ha);
    let hr = base_hour();
    create(
        &ha,
        "shared",
        json!({"pipeline": "nightly@latest", "trigger": cron("0 * * * *"), "start_time": fmt(hr)}),
    );
    // the other host sees it
    assert_eq!(schedule(&hb, "shared")["name"], "shared");
    let clients = [
        (a.url.clone(), a.token.clone()),
        (b.url.clone(), a.token.clone()),
    ];
    let mut sums = Vec::new();
    for i in 0..5 {
        let at = hr + i * HOUR + 30;
        let barrier = std::sync::Barrier::new(2);
        let replies: Vec<Value> = std::thread::scope(|s| {
            let handles: Vec<_> = clients
                .iter()
                .map(|(url, token)| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        let h = Http::with_token(url, Some(token));
                        barrier.wait();
                        pass(&h, at)
                    })
                })
                .collect();
            handles.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let runs = runs_of(&ha, "shared");
        assert_eq!(
            runs.len(),
            i as usize + 1,
            "tick {}: {runs:?}",
            fmt(hr + i * HOUR)
        );
        for p in &replies {
            let (_, skipped, queued, failed) = counts(p);
            assert_eq!((skipped, queued, failed), (0, 0, 0), "{replies:?}");
        }
        let t = ticks(&ha, "shared");
        assert_eq!(t.len(), i as usize + 1, "{t:?}");
        assert_eq!(t.last().unwrap().1, "Submitted", "{t:?}");
        // one host submitted it; the other found it taken
        sums.push(replies.iter().map(|p| counts(p).0).sum::<u64>());
        // let it end, so that the next tick does not overlap it
        let last = runs.last().unwrap()["id"].as_str().unwrap().to_string();
        assert_eq!(wait_run(&ha, &last, 120)["state"], "Completed");
    }
    let want = strings(&(0..5).map(|k| hr + k * HOUR).collect::<Vec<_>>());
    for h in [&ha, &hb] {
        assert_eq!(all_runs(h).len(), 5);
        assert_eq!(triggers(h, "shared"), want);
        let t = ticks(h, "shared");
        let runs = runs_of(h, "shared");
        assert_eq!(t.len(), 5, "{t:?}");
        for ((tick, outcome, job), run) in t.iter().zip(&runs) {
            assert_eq!(outcome, "Submitted", "{t:?}");
            assert_eq!(Some(tick.as_str()), run["trigger_time"].as_str());
            assert_eq!(job.as_deref(), run["id"].as_str());
        }
    }
    assert_eq!(
        sums, [1; 5],
        "runs submitted per pass, summed over both hosts (each tick has one run)"
    );
    drop((a, b));
}

/// Disabled schedules do not fire; enabling fires no tick of the time it was off; delete
/// removes the schedule (404 afterwards) and keeps its runs.
#[test]
fn enable_disable_and_delete() {
    let host = Host::start(Backend::Sqlite);
    let h = host.http();
    publish_nightly(&h);
    let hr = base_hour();
    let hourly = json!({"pipeline": "nightly", "trigger": cron("0 * * * *")});
    let mut off = hourly.clone();
    off["enabled"] = json!(false);
    let paused = create(&h, "paused", off);
    assert_eq!(paused["enabled"], false);
    assert_eq!(paused["next"], json!([]), "{paused}");
    create(&h, "control", hourly);

    assert_eq!(counts(&pass(&h, hr + 30)), (1, 0, 0, 0));
    assert_eq!(triggers(&h, "control"), [fmt(hr)]);
    assert!(ticks(&h, "paused").is_empty());

    let v = h
        .post(&format!("{WS}/schedules/control/disable"), json!({}))
        .ok();
    assert_eq!(v["enabled"], false);
    assert_eq!(v["next"], json!([]), "{v}");
    assert_eq!(schedule(&h, "control")["enabled"], false);
    assert_eq!(counts(&pass(&h, hr + HOUR + 30)), (0, 0, 0, 0));
    wait_all_ended(&h, 120);
    let v = h
        .post(&format!("{WS}/schedules/control/enable"), json!({}))
        .ok();
    assert_eq!(v["enabled"], true);
    assert!(!v["next"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(counts(&pass(&h, hr + 2 * HOUR + 30)), (1, 0, 0, 0));
    assert_eq!(triggers(&h, "control"), [fmt(hr), fmt(hr + 2 * HOUR)]);
    assert!(runs_of(&h, "paused").is_empty());
    wait_all_ended(&h, 120);

    // delete: gone, its runs stay
    let ids: Vec<String> = runs_of(&h, "control")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    h.delete(&format!("{WS}/schedules/control")).ok();
    let gone = h.get(&format!("{WS}/schedules/control"));
    assert_eq!(gone.status, 404, "{}", gone.json);
    assert_eq!(gone.code(), "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(h.delete(&format!("{WS}/schedules/control")).status, 404);
    assert_eq!(
        h.post(&format!("{WS}/schedules/control/enable"), json!({}))
            .status,
        404
    );
    let names: Vec<String> = h.get(&format!("{WS}/schedules")).ok()["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["paused"]);
    for id in &ids {
        let r = run_of(&h, id);
        assert_eq!(r["schedule"], "control", "{r}");
        assert_eq!(r["state"], "Completed", "{r}");
    }
    assert_eq!(counts(&pass(&h, hr + 3 * HOUR + 30)), (0, 0, 0, 0));
    assert_eq!(all_runs(&h).len(), 2);

    // the real clock: a minute tick passes while one schedule is off, then it is enabled
    let every_minute = json!({"pipeline": "nightly", "trigger": cron("* * * * *")});
    let mut off = every_minute.clone();
    off["enabled"] = json!(false);
    create(&h, "minutely-off", off);
    create(&h, "minutely-on", every_minute);
    let created = now_secs();
    let minute = (created / 60 + 1) * 60;
    while now_secs() < minute + 1 {
        std::thread::sleep(Duration::from_millis(200));
    }
    h.post(&format!("{WS}/schedules/minutely-off/enable"), json!({}))
        .ok();
    // the tick at `minute` is due and on time for both; only the one enabled all along fires it
    let p = pass(&h, minute + 30);
    assert_eq!(counts(&p), (1, 0, 0, 0), "{p}");
    assert_eq!(triggers(&h, "minutely-on"), [fmt(minute)]);
    assert!(
        ticks(&h, "minutely-off").is_empty(),
        "{:?}",
        ticks(&h, "minutely-off")
    );
    assert!(runs_of(&h, "minutely-off").is_empty());
    wait_all_ended(&h, 120);
    // from its enabling on it fires
    let p = pass(&h, minute + 60 + 5);
    assert_eq!(counts(&p), (2, 0, 0, 0), "{p}");
    assert_eq!(triggers(&h, "minutely-off"), [fmt(minute + 60)]);
    h.post(&format!("{WS}/schedules/minutely-on/disable"), json!({}))
        .ok();
    h.post(&format!("{WS}/schedules/minutely-off/disable"), json!({}))
        .ok();
    wait_all_ended(&h, 120);
}
