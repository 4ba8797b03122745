//! The web portal: HTML routes against the real binary (sign-in, roles, CSRF, escaping, the
//! series endpoint), then the browser suite (tests/browser, Playwright driving Debian's
//! Chromium) against a server holding runs logged by the real mlflow client, a train job, a
//! registered model and an endpoint with two deployments.

use std::process::Command;
use std::time::{Duration, Instant};

use atrium_tests::{Backend, Http, Server, dataset, python_env, root, train_iris};
use serde_json::{Value, json};

const WS: &str = "/api/v1/workspaces/default";

/// A browser-like client: no redirects followed, cookies by hand.
struct Browser {
    base: String,
    client: reqwest::blocking::Client,
    cookie: Option<String>,
}

/// An answer: status, headers, body text.
struct Page {
    status: u16,
    location: String,
    set_cookie: String,
    body: String,
}

impl Browser {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_string(),
            client: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Page {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", c),
            None => req,
        };
        let r = req.send().expect("request");
        let h = |k: &str| {
            r.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let (location, set_cookie) = (h("location"), h("set-cookie"));
        Page {
            status: r.status().as_u16(),
            location,
            set_cookie,
            body: r.text().unwrap_or_default(),
        }
    }

    fn get(&self, path: &str) -> Page {
        self.send(self.client.get(format!("{}{path}", self.base)))
    }

    fn post(&self, path: &str, form: &[(&str, &str)], csrf: Option<&str>) -> Page {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("origin", &self.base)
            .form(form);
        if let Some(t) = csrf {
            req = req.header("x-atrium-csrf", t);
        }
        self.send(req)
    }

    /// Signs in with a token; keeps the session cookie.
    fn sign_in(&mut self, token: &str) -> Page {
        let p = self.post(
            "/ui/login",
            &[("token", token), ("next", "/ui/ws/default")],
            None,
        );
        if p.status == 303 {
            let c = p.set_cookie.split(';').next().unwrap_or("").to_string();
            self.cookie = Some(c);
        }
        p
    }

    /// The CSRF token a page carries for htmx.
    fn csrf(&self) -> String {
        let body = self.get("/ui/ws/default").body;
        let at = body
            .find("\"X-Atrium-Csrf\": \"")
            .expect("page carries a CSRF token")
            + 18;
        body[at..at + 64].to_string()
    }
}

/// Creates a user with a role on `default` and a token; returns the token.
fn user_with_role(admin: &Http, name: &str, role: &str) -> String {
    admin.post("/api/v1/users", json!({ "name": name })).ok();
    admin
        .put(&format!("{WS}/roles/{name}"), json!({ "role": role }))
        .ok();
    admin.post("/api/v1/tokens", json!({ "user": name })).ok()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn mlflow_run(h: &Http, name: &str, points: usize) -> String {
    let r = h
        .post(
            "/api/2.0/mlflow/runs/create",
            json!({ "experiment_id": "0", "run_name": name }),
        )
        .ok();
    let id = r["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let metrics: Vec<Value> = (0..points)
        .map(|i| json!({ "key": "loss", "value": 1.0 / (1.0 + i as f64), "timestamp": 1000 + i, "step": i }))
        .collect();
    for chunk in metrics.chunks(1000) {
        h.post(
            "/api/2.0/mlflow/runs/log-batch",
            json!({ "run_id": id, "metrics": chunk, "params": [] }),
        )
        .ok();
    }
    id
}

#[test]
fn html_routes_sign_in_roles_csrf_and_escaping() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let run = mlflow_run(&h, "<script>alert(1)</script>", 5000);
    h.post(
        "/api/2.0/mlflow/runs/log-batch",
        json!({ "run_id": run, "params": [{ "key": "lr", "value": "0.1" }] }),
    )
    .ok();
    let reader = user_with_role(&h, "rita", "Reader");
    let mut anon = Browser::new(&s.url);

    // not signed in: the home page answers, workspace pages send the browser to sign in
    assert_eq!(anon.get("/").status, 200);
    let p = anon.get("/ui/ws/default/experiments/0?filter=x");
    assert_eq!(p.status, 303);
    assert_eq!(
        p.location,
        "/ui/login?next=%2Fui%2Fws%2Fdefault%2Fexperiments%2F0%3Ffilter%3Dx"
    );
    assert_eq!(anon.get("/ui/login").status, 200);
    // a wrong token: the form again, with the reason
    let p = anon.sign_in("atr_wrong");
    assert_eq!(p.status, 401);
    assert!(p.body.contains("role=\"alert\""), "{}", p.body);
    // a sign-in form posted from another site is refused
    let evil = anon.send(
        anon.client
            .post(format!("{}/ui/login", s.url))
            .header("origin", "http://evil.example")
            .form(&[("token", s.token.as_str())]),
    );
    assert_eq!(evil.status, 403);
    assert!(evil.set_cookie.is_empty());

    let mut admin = Browser::new(&s.url);
    let p = admin.sign_in(&s.token);
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location, "/ui/ws/default");
    assert!(
        p.set_cookie.contains("HttpOnly")
            && p.set_cookie.contains("SameSite=Strict")
            && p.set_cookie.contains("Max-Age="),
        "{}",
        p.set_cookie
    );
    // the cookie opens portal pages only: the API still wants a token
    let api = admin.get(&format!("{WS}/experiments"));
    assert_eq!(api.status, 401, "{}", api.body);

    // a run named <script> renders as text everywhere it shows
    let table = admin.get("/ui/ws/default/experiments/0");
    assert_eq!(table.status, 200);
    assert!(
        table
            .body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{}",
        table.body
    );
    assert!(!table.body.contains("<script>alert(1)"));
    let page = admin.get(&format!("/ui/ws/default/runs/{run}"));
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>alert(1)"));
    assert!(page.body.contains("data-keys=\"loss\""));
    let cmp = admin.get(&format!("/ui/ws/default/compare?runs={run},{run}"));
    assert_eq!(cmp.status, 200);
    assert!(
        !cmp.body.contains("<script>alert(1)"),
        "JSON in the page is escaped too"
    );
    assert!(cmp.body.contains("\\u003cscript\\u003e"));

    // the filter language: an error shows inline with a caret at its position
    let bad = admin.send(
        admin
            .client
            .get(format!(
                "{}/ui/ws/default/experiments/0?filter=metrics.loss%20%3E",
                s.url
            ))
            .header("hx-request", "true"),
    );
    assert_eq!(bad.status, 200);
    assert!(
        bad.body.contains("id=\"filter-error\"") && bad.body.contains("position 14"),
        "{}",
        bad.body
    );
    assert!(
        !bad.body.contains("<html"),
        "an htmx request gets the table part only"
    );
    let or = admin.get("/ui/ws/default/experiments/0?filter=params.lr%20%3D%20%270.1%27%20OR%20params.lr%20%3D%20%270.2%27");
    assert!(or.body.contains("1 run on this page"), "{}", or.body);

    // series: downsampled to the pixel width, spikes kept, bad input precise
    let js = admin.get(&format!("/ui/ws/default/series?run={run}&key=loss&px=100"));
    assert_eq!(js.status, 200, "{}", js.body);
    let v: Value = serde_json::from_str(&js.body).unwrap();
    let sr = &v["series"][0];
    assert_eq!(sr["total"], 5000);
    let n = sr["x"].as_array().unwrap().len();
    assert!(n > 100 && n <= 202, "{n} points for 100 px");
    assert_eq!(sr["y"][0], 1.0, "the first point is kept");
    let zoom = admin.get(&format!(
        "/ui/ws/default/series?run={run}&key=loss&px=100&from=10&to=60"
    ));
    let z: Value = serde_json::from_str(&zoom.body).unwrap();
    assert_eq!(
        z["series"][0]["x"].as_array().unwrap().len(),
        51,
        "a zoom shows the finer range"
    );
    assert_eq!(
        admin
            .get(&format!("/ui/ws/default/series?run={run}&key=loss&x=bogus"))
            .status,
        400
    );
    let missing = admin.get("/ui/ws/default/runs/0123456789abcdef0123456789abcdef");
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("<html") && missing.body.contains("not found"),
        "{}",
        missing.body
    );

    // a model with two versions, an alias to move
    h.post(
        "/api/2.0/mlflow/registered-models/create",
        json!({ "name": "m" }),
    )
    .ok();
    for _ in 0..2 {
        h.post(
            "/api/2.0/mlflow/model-versions/create",
            json!({ "name": "m", "source": format!("runs:/{run}/model"), "run_id": run }),
        )
        .ok();
    }
    h.post(
        "/api/2.0/mlflow/registered-models/alias",
        json!({ "name": "m", "alias": "champion", "version": "1" }),
    )
    .ok();
    let admin_csrf = admin.csrf();
    // a write without the session's CSRF token is refused, and changes nothing
    let forged = admin.post(
        "/ui/ws/default/models/m/alias",
        &[("alias", "champion"), ("version", "2")],
        None,
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.body.contains("CSRF"));
    let wrong = admin.post(
        "/ui/ws/default/models/m/alias",
        &[("alias", "champion"), ("version", "2")],
        Some(&"0".repeat(64)),
    );
    assert_eq!(wrong.status, 403);
    let alias = |h: &Http| {
        h.get("/api/2.0/mlflow/registered-models/alias?name=m&alias=champion")
            .ok()["model_version"]["version"]
            .clone()
    };
    assert_eq!(alias(&h), "1");
    let moved = admin.post(
        "/ui/ws/default/models/m/alias",
        &[("alias", "champion"), ("version", "2")],
        Some(&admin_csrf),
    );
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert!(moved.body.contains("@champion now points at version 2"));
    assert_eq!(alias(&h), "2");

    // a Reader sees no write control, and a forged write with a valid session is refused
    let mut rita = Browser::new(&s.url);
    assert_eq!(rita.sign_in(&reader).status, 303);
    let mp = rita.get("/ui/ws/default/models/m");
    assert_eq!(mp.status, 200);
    assert!(
        admin
            .get("/ui/ws/default/models/m")
            .body
            .contains("id=\"alias-form\"")
    );
    assert!(
        !mp.body.contains("id=\"alias-form\""),
        "no alias form for a Reader"
    );
    assert!(mp.body.contains("rita · Reader"));
    let rcsrf = rita.csrf();
    let denied = rita.post(
        "/ui/ws/default/models/m/alias",
        &[("alias", "champion"), ("version", "1")],
        Some(&rcsrf),
    );
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.body.contains("Contributor"), "{}", denied.body);
    assert_eq!(alias(&h), "2", "nothing changed");
    // the refusal is in the audit log
    let audit = h.get(&format!("{WS}/audit?max_results=50")).ok();
    assert!(
        audit.to_string().contains("/ui/ws/default/models/m/alias"),
        "{audit}"
    );

    // the workspace switcher lists only the caller's workspaces
    h.put("/api/v1/workspaces/hidden", json!({})).ok();
    assert!(admin.get("/").body.contains("hidden"));
    assert!(!rita.get("/").body.contains("hidden"));
    assert_eq!(rita.get("/ui/ws/hidden").status, 404);

    // datasets: list, a version's schema and preview, the CSV download
    h.raw(
        "POST",
        &format!("{WS}/datasets/iris/versions"),
        Some(dataset("iris.csv")),
    )
    .ok();
    assert!(
        admin
            .get("/ui/ws/default/datasets")
            .body
            .contains("/ui/ws/default/datasets/iris")
    );
    let dp = admin.get("/ui/ws/default/datasets/iris");
    assert_eq!(dp.status, 200);
    assert!(
        dp.body.contains("sepal_length") && dp.body.contains("iris:1"),
        "{}",
        dp.body
    );
    let csv = admin.get("/ui/ws/default/datasets/iris/data?version=1");
    assert_eq!(csv.status, 200);
    assert!(
        csv.body.starts_with("sepal_length"),
        "{}",
        &csv.body[..80.min(csv.body.len())]
    );
    assert_eq!(
        admin.get("/ui/ws/default/datasets/iris?version=9").status,
        404
    );

    // settings: a secret is set through the portal and only its name shows; a Reader can't
    let set = admin.post(
        "/ui/ws/default/secrets/set",
        &[("name", "db-password"), ("value", "hunter2-very-secret")],
        Some(&admin_csrf),
    );
    assert_eq!(set.status, 200, "{}", set.body);
    assert!(
        set.body.contains("secret &#39;db-password&#39; set"),
        "{}",
        set.body
    );
    assert!(
        !set.body.contains("hunter2"),
        "a secret's value is never shown"
    );
    let rs = rita.get("/ui/ws/default/settings");
    assert!(rs.body.contains("db-password") && !rs.body.contains("id=\"secret-form\""));
    assert_eq!(
        rita.post(
            "/ui/ws/default/secrets/delete",
            &[("name", "db-password")],
            Some(&rcsrf)
        )
        .status,
        403
    );
    assert_eq!(
        rita.get("/ui/ws/default/audit").status,
        403,
        "the audit log is for Owners"
    );
    let audit_page = admin.get("/ui/ws/default/audit");
    assert!(
        audit_page.body.contains("/ui/ws/default/secrets/set"),
        "{}",
        audit_page.body
    );

    // the code snapshot: where the code came from and its files, opened in the artifacts browser
    h.post(
        "/api/2.0/mlflow/runs/set-tag",
        json!({ "run_id": run, "key": "mlflow.source.git.commit", "value": "c0ffee1234" }),
    )
    .ok();
    for f in ["train.py", "lib/util.py"] {
        let put = h.raw(
            "PUT",
            &format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/code/{f}"),
            Some(b"print('hello')\n".to_vec()),
        );
        assert_eq!(put.status, 200, "{:?}", put.json);
    }
    let rp = admin.get(&format!("/ui/ws/default/runs/{run}"));
    assert!(
        rp.body.contains("id=\"code-files\"")
            && rp.body.contains("c0ffee1234")
            && rp.body.contains(">lib/util.py</a>")
            && rp.body.contains("path=code%2Ftrain.py"),
        "{}",
        rp.body
    );

    // components and datastores: the built-ins with their capabilities and manifest
    let cp = admin.get("/ui/ws/default/components");
    assert_eq!(cp.status, 200);
    assert!(
        cp.body
            .contains("/ui/ws/default/components/scorer-tabular/")
            && cp.body.contains("id=\"datastores\""),
        "{}",
        cp.body
    );
    let listed: Value = h.get(&format!("{WS}/components")).ok();
    let fs = listed["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "storage-fs")
        .expect("storage-fs is built in")
        .clone();
    let one = rita.get(&format!(
        "/ui/ws/default/components/storage-fs/{}",
        fs["version"].as_str().unwrap()
    ));
    assert_eq!(one.status, 200, "{}", one.body);
    assert!(
        one.body.contains("id=\"capabilities\"")
            && one.body.contains("guest=/data")
            && one.body.contains("id=\"manifest\"")
            && one.body.contains(fs["digest"].as_str().unwrap()),
        "{}",
        one.body
    );
    assert_eq!(
        admin
            .get("/ui/ws/default/components/storage-fs/9.9.9")
            .status,
        404
    );

    // tokens: a user lists, creates (shown once) and revokes their own; users are for admins
    let tp = rita.get("/ui/tokens");
    assert_eq!(tp.status, 200, "{}", tp.body);
    assert!(tp.body.contains("this session") && !tp.body.contains("id=\"users\""));
    let made = rita.post(
        "/ui/tokens/create",
        &[("description", "laptop <b>"), ("expires_days", "30")],
        Some(&rcsrf),
    );
    assert_eq!(made.status, 200, "{}", made.body);
    assert!(made.body.contains("laptop &#60;b&#62;"), "{}", made.body);
    let needle = "id=\"new-token-value\">";
    let at = made.body.find(needle).expect("the new token is shown") + needle.len();
    let new_token = made.body[at..].split('<').next().unwrap().to_string();
    assert!(new_token.starts_with("atr_"), "{new_token}");
    let as_new = Http::with_token(&s.url, Some(&new_token));
    assert_eq!(as_new.get("/api/v1/whoami").status, 200);
    let tid = as_new.get("/api/v1/whoami").ok()["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !rita.get("/ui/tokens").body.contains(&new_token),
        "a token's value is shown once"
    );
    let bad = rita.post(
        "/ui/tokens/create",
        &[("description", "x"), ("expires_days", "soon")],
        Some(&rcsrf),
    );
    assert!(
        bad.body
            .contains("expiry &#39;soon&#39; is not a number of days"),
        "{}",
        bad.body
    );
    let rev = rita.post("/ui/tokens/revoke", &[("id", &tid)], Some(&rcsrf));
    assert!(
        rev.body.contains(&format!("token {tid} revoked")),
        "{}",
        rev.body
    );
    assert_eq!(as_new.get("/api/v1/whoami").status, 401, "revoked at once");
    // someone else's token answers like an unknown one
    let admin_tid = h.get("/api/v1/whoami").ok()["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = rita.post("/ui/tokens/revoke", &[("id", &admin_tid)], Some(&rcsrf));
    assert!(other.body.contains("does not exist"), "{}", other.body);
    assert_eq!(h.get("/api/v1/whoami").status, 200);
    assert_eq!(
        rita.get("/ui/users").status,
        403,
        "users are for server admins"
    );
    assert_eq!(
        rita.post("/ui/users/create", &[("name", "mallory")], Some(&rcsrf))
            .status,
        403
    );
    let up = admin.get("/ui/users");
    assert_eq!(up.status, 200);
    assert!(
        up.body.contains("id=\"users\"") && up.body.contains("default: Reader"),
        "{}",
        up.body
    );
    let nu = admin.post(
        "/ui/users/create",
        &[("name", "olga"), ("admin", "true")],
        Some(&admin_csrf),
    );
    assert!(
        nu.body.contains("user olga created (server admin)"),
        "{}",
        nu.body
    );
    let dup = admin.post("/ui/users/create", &[("name", "olga")], Some(&admin_csrf));
    assert!(dup.body.contains("class=\"error\""), "{}", dup.body);
    let ot = admin.post(
        "/ui/users/token",
        &[("user", "olga"), ("description", "ci")],
        Some(&admin_csrf),
    );
    assert!(ot.body.contains("created for olga"), "{}", ot.body);

    // sign out ends the session
    let out = rita.post("/ui/logout", &[], Some(&rcsrf));
    assert_eq!(out.status, 204);
    assert!(out.set_cookie.contains("Max-Age=0"));
    assert_eq!(rita.get("/ui/ws/default").status, 303);

    // assets are embedded and cacheable; an unknown one is 404
    let a = admin.get("/ui/assets/uplot.min.js");
    assert_eq!(a.status, 200);
    assert!(a.body.len() > 40_000);
    assert_eq!(admin.get("/ui/assets/nope.js").status, 404);
}

#[test]
fn portal_in_chromium() {
    let chromium = std::env::var("ATRIUM_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "the browser suite needs Debian's chromium at {chromium} (`apt-get install chromium`; .ci/run installs it) or ATRIUM_CHROMIUM"
    );
    let py = python_env("tests/browser/requirements.txt", "tests/browser/.venv");
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    // a train job (a run with a job log and a model), registered twice; an endpoint with two
    // deployments, all traffic on blue
    let (run, _job) = train_iris(&h);
    for _ in 0..2 {
        h.post(
            &format!("{WS}/models/iris/versions"),
            json!({ "run_id": run, "path": "model" }),
        )
        .ok();
    }
    h.post(
        "/api/2.0/mlflow/registered-models/alias",
        json!({ "name": "iris", "alias": "champion", "version": "1" }),
    )
    .ok();
    h.put(
        &format!("{WS}/endpoints/iris-web"),
        json!({ "auth_mode": "none" }),
    )
    .ok();
    for d in ["blue", "green"] {
        h.put(
            &format!("{WS}/endpoints/iris-web/deployments/{d}"),
            json!({ "model": if d == "blue" { "models:/iris/1" } else { "models:/iris/2" } }),
        )
        .ok();
    }
    // a grid sweep of 4 short trials on iris (uploaded by train_iris), finished before the
    // browser looks at its leaderboard
    let sweep = h
        .post(
            &format!("{WS}/jobs"),
            json!({
                "type": "sweep", "name": "iris-grid", "experiment": "sweeps",
                "sweep": {
                    "trial": { "type": "train", "train": {
                        "dataset": "iris:1", "target": "target", "task": "classification",
                        "epochs": 4, "batch_size": 16, "seed": 1,
                        "model": { "hidden": "${{search_space.hidden}}" },
                        "optimizer": { "lr": "${{search_space.lr}}" } } },
                    "search_space": {
                        "lr": { "kind": "choice", "values": [0.01, 0.05] },
                        "hidden": { "kind": "choice", "values": [[8], [16]] } },
                    "objective": { "primary_metric": "val_accuracy", "goal": "maximize" },
                    "sampler": "grid", "limits": { "max_concurrent_trials": 2 }, "seed": 5
                }
            }),
        )
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let j = h.get(&format!("{WS}/jobs/{sweep}")).ok();
        match j["state"].as_str() {
            Some("Completed") => break,
            Some("Failed" | "Canceled") => panic!("sweep failed: {j}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "sweep did not finish: {j}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let reader = user_with_role(&h, "rita", "Reader");
    let shots = root().join("target/portal-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let started = Instant::now();
    let out = Command::new(py)
        .args(["-m", "unittest", "-v", "test_portal"])
        .current_dir(root().join("tests/browser"))
        .env("ATRIUM_URL", &s.url)
        .env("ATRIUM_TOKEN", &s.token)
        .env("ATRIUM_READER_TOKEN", &reader)
        .env("ATRIUM_TRAIN_RUN", &run)
        .env("ATRIUM_SWEEP_JOB", &sweep)
        .env("ATRIUM_CHROMIUM", &chromium)
        .env("ATRIUM_SHOTS", &shots)
        .env("MLFLOW_TRACKING_URI", &s.url)
        .env("MLFLOW_TRACKING_TOKEN", &s.token)
        .env("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "{stdout}\n{stderr}\nbrowser suite took {:?}",
        started.elapsed()
    );
    assert!(
        out.status.success() && stderr.contains("OK"),
        "browser suite failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        std::fs::read_to_string(&s.log).unwrap_or_default()
    );
    let n = std::fs::read_dir(&shots).unwrap().count();
    assert!(n >= 16, "one screenshot per page at two sizes, got {n}");
}
