//! Access control against the real binary: the authorization matrix generated from the
//! server's own route table (every route × Owner / Contributor / Reader / no role / no token /
//! a token of another workspace), cross-workspace probes on every object kind, tokens
//! (revocation, expiry, Basic auth, stored only as hashes), the bootstrap token file,
//! anonymous read-only workspaces, the audit log, and the CLI verbs.

use std::collections::BTreeMap;
use std::time::Duration;

use atrium_tests::{Backend, Http, Server, dataset};
use serde_json::{Value, json};

/// Creates a user with a token; returns the token.
fn user_token(admin: &Http, name: &str) -> String {
    admin.post("/api/v1/users", json!({ "name": name })).ok();
    admin
        .post(
            "/api/v1/tokens",
            json!({ "user": name, "description": format!("{name}'s token") }),
        )
        .ok()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn assign(admin: &Http, ws: &str, user: &str, role: &str) {
    admin
        .put(
            &format!("/api/v1/workspaces/{ws}/roles/{user}"),
            json!({ "role": role }),
        )
        .ok();
}

/// A principal of the matrix: its name and its roles per workspace.
struct Who {
    name: &'static str,
    http: Http,
    roles: BTreeMap<&'static str, u8>,
}

const READER: u8 = 1;
const CONTRIBUTOR: u8 = 2;
const OWNER: u8 = 3;

/// Whether a route template is one of the portal's (HTML pages).
fn is_portal(template: &str) -> bool {
    template == "/" || template.starts_with("/ui/") || template == "/ws/{ws}/"
}

/// An HTML answer's text with the entities the templates write undone.
fn html_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
}

/// POST routes that only read (searches): the only non-GET routes allowed a read policy.
fn reads_by_post(path: &str) -> bool {
    path.ends_with("/search")
        || path.ends_with("runs:search")
        || path.ends_with("/get-latest-versions")
        || path.ends_with("/search-datasets")
        // a pipeline's plan computes cache keys and starts nothing
        || path.ends_with("/plan")
        // scoring rows with a model version stores nothing
        || path.ends_with("/models/{name}/versions/{version}/predict")
}

/// Fills a path template: `{ws}` with the workspace, every other parameter with a name that
/// exists nowhere (so allowed calls fail in the handler and change nothing).
fn fill(template: &str, ws: &str) -> String {
    let mut out = String::new();
    for seg in template.split('/').skip(1) {
        out.push('/');
        if seg == "{ws}" {
            out.push_str(ws);
        } else if seg.starts_with("{*") {
            out.push_str("nx/x");
        } else if seg.starts_with('{') {
            out.push_str("nx0");
        } else if let Some((_, rest)) = seg.split_once("}:") {
            // `{id}:action` style segments do not occur in templates; keep literal text
            out.push_str(rest);
        } else {
            out.push_str(seg);
        }
    }
    out
}

#[test]
fn authorization_matrix_covers_every_route() {
    let s = Server::start(Backend::Sqlite);
    let admin = s.http();
    for ws in ["mx-a", "mx-b"] {
        assert_eq!(
            admin
                .put(&format!("/api/v1/workspaces/{ws}"), json!({}))
                .status,
            201
        );
    }
    let mut who = Vec::new();
    for (name, role) in [
        ("mx-owner", OWNER),
        ("mx-contributor", CONTRIBUTOR),
        ("mx-reader", READER),
    ] {
        let t = user_token(&admin, name);
        let role_name = match role {
            OWNER => "Owner",
            CONTRIBUTOR => "Contributor",
            _ => "Reader",
        };
        // the same role on mx-a and on default (the root MLflow routes' workspace)
        assign(&admin, "mx-a", name, role_name);
        assign(&admin, "default", name, role_name);
        who.push(Who {
            name,
            http: s.http_as(Some(&t)),
            roles: [("mx-a", role), ("default", role)].into(),
        });
    }
    let t = user_token(&admin, "mx-norole");
    who.push(Who {
        name: "no role",
        http: s.http_as(Some(&t)),
        roles: BTreeMap::new(),
    });
    who.push(Who {
        name: "no token",
        http: s.http_as(None),
        roles: BTreeMap::new(),
    });
    let t = user_token(&admin, "mx-other");
    assign(&admin, "mx-b", "mx-other", "Owner");
    who.push(Who {
        name: "other workspace",
        http: s.http_as(Some(&t)),
        roles: [("mx-b", OWNER)].into(),
    });
    // the owner goes last: its allowed calls may delete what the others probe
    who.rotate_left(1);

    let table = admin.get("/api/v1/routes").ok();
    let mut routes: Vec<(String, String, String)> = table["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
                r["policy"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        routes.len() > 250,
        "only {} routes in the table",
        routes.len()
    );
    // deleting the workspace goes last of all
    routes.sort_by_key(|(m, p, _)| m == "DELETE" && p == "/api/v1/workspaces/{ws}");
    let mut seen = std::collections::BTreeSet::new();
    let mut cells = 0;
    for (method, template, policy) in &routes {
        assert!(
            seen.insert((method.clone(), template.clone())),
            "{method} {template} is in the table twice"
        );
        if method != "GET" && policy == "read" {
            assert!(
                reads_by_post(template),
                "{method} {template} changes state but is guarded as a read"
            );
        }
        if method == "GET" {
            assert!(
                !matches!(policy.as_str(), "write" | "log"),
                "GET {template} is guarded as a write"
            );
        }
        let ws = if template.contains("{ws}") {
            "mx-a"
        } else {
            "default"
        };
        let path = fill(template, ws);
        for w in &who {
            let body = (method != "GET").then(|| b"{}".to_vec());
            let r = w.http.raw(method, &path, body);
            cells += 1;
            let role = w.roles.get(ws).copied().unwrap_or(0);
            // portal routes answer HTML pages in the same terms (and send a browser without a
            // session to the sign-in page, which this client follows)
            let portal = is_portal(template);
            let text = html_text(&r.bytes);
            let absent = format!("workspace '{ws}' does not exist (or you have no role on it; ");
            let hidden = r.status == 404
                && (r.message().starts_with(&absent) || (portal && text.contains(&absent)));
            let code = if portal {
                ["PERMISSION_DENIED", "UNAUTHENTICATED"]
                    .into_iter()
                    .find(|c| text.contains(c))
                    .unwrap_or("")
                    .to_string()
            } else {
                r.code().to_string()
            };
            let passed = r.status != 401 && r.status != 403 && !hidden;
            let cell = format!(
                "{method} {path} [{policy}] as {}: {} {}",
                w.name, r.status, r.json
            );
            let no_token = w.name == "no token";
            match policy.as_str() {
                "public" => assert!(passed, "{cell}"),
                "scoring" => assert!(passed || (r.status == 401 && role == 0), "{cell}"),
                "authenticated" => {
                    if no_token && portal && method == "GET" {
                        assert!(
                            r.status == 200 && text.contains("action=\"/ui/login\""),
                            "{cell}: expected the sign-in page"
                        );
                    } else if no_token {
                        assert_eq!(r.status, 401, "{cell}");
                    } else {
                        assert!(passed, "{cell}");
                    }
                }
                "admin" if no_token && portal && method == "GET" => assert!(
                    r.status == 200 && text.contains("action=\"/ui/login\""),
                    "{cell}: expected the sign-in page"
                ),
                "admin" => assert_eq!(r.status, if no_token { 401 } else { 403 }, "{cell}"),
                "read" | "write" | "log" | "own" | "put_workspace" => {
                    let need = match policy.as_str() {
                        "read" => READER,
                        "write" | "log" => CONTRIBUTOR,
                        _ => OWNER,
                    };
                    if no_token && portal && method == "GET" {
                        assert!(
                            r.status == 200 && text.contains("action=\"/ui/login\""),
                            "{cell}: expected the sign-in page"
                        );
                    } else if no_token {
                        assert_eq!(r.status, 401, "{cell}");
                        assert_eq!(code, "UNAUTHENTICATED", "{cell}");
                    } else if role >= need {
                        assert!(passed, "{cell}");
                    } else if role == 0 && policy != "put_workspace" {
                        assert!(hidden, "{cell}: expected the workspace to look absent");
                    } else {
                        assert_eq!(r.status, 403, "{cell}");
                        assert_eq!(code, "PERMISSION_DENIED", "{cell}");
                    }
                }
                other => panic!("{method} {template} has an unknown policy '{other}'"),
            }
        }
    }
    assert!(cells > 1500, "{cells} cells");
    // the owner's DELETE of mx-a was the last allowed call
    assert_eq!(admin.get("/api/v1/workspaces/mx-a").status, 404);
}

#[test]
fn objects_of_one_workspace_are_invisible_from_another() {
    let s = Server::start(Backend::Sqlite);
    let admin = s.http();
    for ws in ["px-a", "px-b"] {
        admin
            .put(&format!("/api/v1/workspaces/{ws}"), json!({}))
            .ok();
    }
    let a = "/api/v1/workspaces/px-a";
    let b = "/api/v1/workspaces/px-b";
    // objects of every kind in px-a
    let exp = admin
        .post(&format!("{a}/experiments"), json!({ "name": "secret-exp" }))
        .ok();
    let exp_id = exp["id"].to_string();
    let run = admin
        .post(&format!("{a}/runs"), json!({ "experiment_id": exp["id"] }))
        .ok();
    let run_id = run["id"].as_str().unwrap().to_string();
    admin
        .raw(
            "PUT",
            &format!("{a}/runs/{run_id}/artifacts/f.txt"),
            Some(b"bytes".to_vec()),
        )
        .ok();
    admin
        .raw(
            "PUT",
            &format!("{a}/runs/{run_id}/artifacts/model/w.bin"),
            Some(b"weights".to_vec()),
        )
        .ok();
    admin
        .raw(
            "POST",
            &format!("{a}/datasets/iris/versions"),
            Some(dataset("iris.csv")),
        )
        .ok();
    admin
        .post(
            &format!("{a}/models/m1/versions"),
            json!({ "run_id": run_id, "path": "model" }),
        )
        .ok();
    admin.put(&format!("{a}/endpoints/px-ep"), json!({})).ok();
    let r = admin.push_component(
        "px-a",
        "px-stopper",
        "0.1.0",
        atrium_tests::plugin_wasm("example_stopper"),
        "kind = \"stopper\"\n",
    );
    assert_eq!(r.status, 201, "{}", r.json);
    admin
        .put(
            &format!("{a}/datastores/archive"),
            json!({ "component": "storage-fs", "version": "0.1.0", "config": { "root": "/data" } }),
        )
        .ok();
    let job = admin
        .post(
            &format!("{a}/jobs"),
            json!({ "type": "command", "name": "c", "experiment": "secret-exp", "command": { "command": "true" } }),
        )
        .ok();
    let job_id = job["id"].as_str().unwrap().to_string();
    // an Owner of px-b only
    let t = user_token(&admin, "px-owner-b");
    assign(&admin, "px-b", "px-owner-b", "Owner");
    let other = s.http_as(Some(&t));
    let probes = [
        format!("/experiments/{exp_id}"),
        format!("/runs/{run_id}"),
        format!("/runs/{run_id}/artifacts"),
        format!("/runs/{run_id}/artifacts/f.txt"),
        format!("/runs/{run_id}/metrics/m"),
        "/datasets/iris/versions/1".to_string(),
        "/datasets/iris/versions/1/data".to_string(),
        "/models/m1".to_string(),
        "/models/m1/versions/1".to_string(),
        "/endpoints/px-ep".to_string(),
        format!("/jobs/{job_id}"),
        format!("/jobs/{job_id}/logs"),
        "/datastores/archive".to_string(),
        "/components/px-stopper/versions/0.1.0".to_string(),
    ];
    for p in &probes {
        // through the workspace it owns: the object of px-a is not there
        let r = other.get(&format!("{b}{p}"));
        assert_eq!(r.status, 404, "GET {b}{p}: {}", r.json);
        let text = String::from_utf8_lossy(&r.bytes).to_string();
        assert!(
            !text.contains("px-a"),
            "{b}{p} names the other workspace: {text}"
        );
        // through px-a itself: the workspace is hidden
        let r = other.get(&format!("{a}{p}"));
        assert_eq!(r.status, 404, "GET {a}{p}: {}", r.json);
        // worded exactly like a workspace that does not exist, naming only the caller's own
        let none = other.get(&format!("/api/v1/workspaces/px-none{p}"));
        assert_eq!(none.status, 404, "{}", none.json);
        assert_eq!(
            r.message(),
            none.message().replace("px-none", "px-a"),
            "{a}{p}"
        );
        assert_eq!(
            r.message(),
            "workspace 'px-a' does not exist (or you have no role on it; your workspaces: px-b)",
            "{a}{p}"
        );
        // deleting it is refused the same way, and the object is still there
        let r = other.delete(&format!("{a}{p}"));
        assert!(matches!(r.status, 404 | 405), "DELETE {a}{p}: {}", r.status);
    }
    // a run id of px-a through px-b's MLflow routes
    let r = other.get(&format!("/ws/px-b/api/2.0/mlflow/runs/get?run_id={run_id}"));
    assert_eq!(r.status, 404, "{}", r.json);
    let r = other.post(
        "/ws/px-b/api/2.0/mlflow/runs/delete",
        json!({ "run_id": run_id }),
    );
    assert_eq!(r.status, 404, "{}", r.json);
    // the workspace listing shows only px-b
    let names: Vec<String> = other.get("/api/v1/workspaces").ok()["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["px-b"]);
    // everything in px-a is intact
    assert_eq!(
        admin.get(&format!("{a}/runs/{run_id}")).ok()["lifecycle_stage"],
        "active"
    );
    admin
        .get(&format!("{a}/runs/{run_id}/artifacts/f.txt"))
        .ok();
    admin.get(&format!("{a}/endpoints/px-ep")).ok();
}

#[test]
fn tokens_revocation_expiry_basic_auth_and_bootstrap() {
    let s = Server::start(Backend::Sqlite);
    let admin = s.http();
    // the bootstrap token file: owner-only, and the token works
    let file = s.data_dir.join("admin.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "admin.token mode {mode:o}");
    }
    assert!(s.token.starts_with("atr_") && s.token.len() > 40);
    let me = admin.get("/api/v1/whoami").ok();
    assert_eq!(me["user"], "admin");
    assert_eq!(me["admin"], true);
    // no token, a garbage token, a malformed header
    for h in [
        s.http_as(None),
        s.http_as(Some("atr_garbage")),
        s.http_as(Some("")),
    ] {
        let r = h.get("/api/v1/workspaces/default/experiments");
        assert_eq!(r.status, 401, "{}", r.json);
        assert_eq!(r.code(), "UNAUTHENTICATED");
    }
    // a user's token; revocation takes effect on the next request
    let t = user_token(&admin, "ann");
    assign(&admin, "default", "ann", "Reader");
    let ann = s.http_as(Some(&t));
    ann.get("/api/v1/workspaces/default/experiments").ok();
    let tokens = ann.get("/api/v1/tokens").ok();
    let id = tokens["tokens"][0]["id"].as_str().unwrap().to_string();
    assert!(
        !tokens.to_string().contains(&t),
        "a listing shows a token value"
    );
    ann.delete(&format!("/api/v1/tokens/{id}")).ok();
    let r = ann.get("/api/v1/workspaces/default/experiments");
    assert_eq!(r.status, 401);
    assert!(r.message().contains("revoked"), "{}", r.message());
    // another user's token id looks unknown to a non-admin
    let t2 = user_token(&admin, "bob");
    let bob = s.http_as(Some(&t2));
    let admin_tokens = admin.get("/api/v1/tokens").ok();
    let admin_id = admin_tokens["tokens"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        bob.delete(&format!("/api/v1/tokens/{admin_id}")).status,
        404
    );
    assert_eq!(
        bob.post("/api/v1/tokens", json!({ "user": "admin" }))
            .status,
        403
    );
    assert_eq!(bob.get("/api/v1/users").status, 403);
    assert_eq!(bob.put("/api/v1/workspaces/bobs", json!({})).status, 403);
    // an expiring token
    let short = bob
        .post("/api/v1/tokens", json!({ "expires_in_secs": 1 }))
        .ok();
    let short = s.http_as(short["token"].as_str());
    short.get("/api/v1/whoami").ok();
    std::thread::sleep(Duration::from_millis(1500));
    let r = short.get("/api/v1/whoami");
    assert_eq!(r.status, 401);
    assert!(r.message().contains("expired"), "{}", r.message());
    assert_eq!(
        bob.post("/api/v1/tokens", json!({ "expires_in_secs": 0 }))
            .status,
        400
    );
    // Basic auth: user name and one of their tokens
    let basic = |user: &str, pw: &str| {
        reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/whoami", s.url))
            .basic_auth(user, Some(pw))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(basic("bob", &t2), 200);
    assert_eq!(basic("admin", &t2), 401);
    assert_eq!(basic("bob", "nope"), 401);
    // tokens are stored as hashes only
    let mut db = Vec::new();
    for e in std::fs::read_dir(&s.data_dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("atrium.db")
        {
            db.extend(std::fs::read(&p).unwrap());
        }
    }
    for tok in [&s.token, &t, &t2] {
        let needle = tok.as_bytes();
        assert!(
            !db.windows(needle.len()).any(|w| w == needle),
            "a token is stored in clear"
        );
    }
    // the token survives a restart (the file is not rewritten once an admin exists)
    let mut s = s;
    s.restart();
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), s.token);
    s.http().get("/api/v1/whoami").ok();
    assert_eq!(
        s.http_as(Some(&t2)).get("/api/v1/whoami").ok()["user"],
        "bob"
    );
    // the last admin cannot be deleted
    assert_eq!(s.http().delete("/api/v1/users/admin").status, 409);
    // locked out (the admin revoked its only token): `serve --reset-admin-token` recovers
    let old = s.token.clone();
    let id = s.http().get("/api/v1/whoami").ok()["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.http().delete(&format!("/api/v1/tokens/{id}")).ok();
    assert_eq!(s.http().get("/api/v1/whoami").status, 401);
    s.stop();
    let data_dir = s.data_dir.clone();
    let r = Server::start_with_args(&data_dir, None, &["--reset-admin-token"]);
    assert_ne!(r.token, old);
    assert_eq!(r.http().get("/api/v1/whoami").ok()["user"], "admin");
    assert_eq!(r.http_as(Some(&old)).get("/api/v1/whoami").status, 401);
}

#[test]
fn anonymous_read_only_where_the_operator_enables_it() {
    let s = Server::start(Backend::Sqlite);
    let admin = s.http();
    admin.put("/api/v1/workspaces/open", json!({})).ok();
    let exp = admin
        .post(
            "/api/v1/workspaces/open/experiments",
            json!({ "name": "public" }),
        )
        .ok();
    let anon = s.http_as(None);
    assert_eq!(anon.get("/api/v1/workspaces/open/experiments").status, 401);
    // an Owner cannot open it: that is the operator's decision
    let t = user_token(&admin, "open-owner");
    assign(&admin, "open", "open-owner", "Owner");
    let r = s
        .http_as(Some(&t))
        .put("/api/v1/workspaces/open", json!({ "anonymous_read": true }));
    assert_eq!(r.status, 403, "{}", r.json);
    let w = admin
        .put("/api/v1/workspaces/open", json!({ "anonymous_read": true }))
        .ok();
    assert_eq!(w["anonymous_read"], true);
    anon.get("/api/v1/workspaces/open/experiments").ok();
    anon.get(&format!(
        "/api/v1/workspaces/open/experiments/{}",
        exp["id"]
    ))
    .ok();
    anon.get("/ws/open/api/2.0/mlflow/experiments/search?max_results=5")
        .ok();
    // still read-only
    let r = anon.post(
        "/api/v1/workspaces/open/experiments",
        json!({ "name": "x" }),
    );
    assert_eq!(r.status, 401);
    let r = anon.post(
        "/ws/open/api/2.0/mlflow/experiments/create",
        json!({ "name": "x" }),
    );
    assert_eq!(r.status, 401);
    // other workspaces stay closed
    assert_eq!(
        anon.get("/api/v1/workspaces/default/experiments").status,
        401
    );
    // a user without a role reads it too, and cannot write
    let t = user_token(&admin, "visitor");
    let visitor = s.http_as(Some(&t));
    visitor.get("/api/v1/workspaces/open/experiments").ok();
    assert_eq!(
        visitor
            .post(
                "/api/v1/workspaces/open/experiments",
                json!({ "name": "x" })
            )
            .status,
        404
    );
    admin
        .put(
            "/api/v1/workspaces/open",
            json!({ "anonymous_read": false }),
        )
        .ok();
    assert_eq!(anon.get("/api/v1/workspaces/open/experiments").status, 401);
}

#[test]
fn audit_log_records_who_changed_what() {
    let s = Server::start(Backend::Sqlite);
    let admin = s.http();
    admin.put("/api/v1/workspaces/au", json!({})).ok();
    let t_owner = user_token(&admin, "au-owner");
    let t_contrib = user_token(&admin, "au-contrib");
    assign(&admin, "au", "au-owner", "Owner");
    let owner = s.http_as(Some(&t_owner));
    let contrib = s.http_as(Some(&t_contrib));
    // the owner assigns a role; the contributor creates and deletes; a reader-less write is denied
    owner
        .put(
            "/api/v1/workspaces/au/roles/au-contrib",
            json!({ "role": "Contributor" }),
        )
        .ok();
    let exp = contrib
        .post(
            "/api/v1/workspaces/au/experiments",
            json!({ "name": "audited" }),
        )
        .ok();
    contrib
        .delete(&format!("/api/v1/workspaces/au/experiments/{}", exp["id"]))
        .ok();
    let r = contrib.put(
        "/api/v1/workspaces/au/roles/au-contrib",
        json!({ "role": "Owner" }),
    );
    assert_eq!(r.status, 403);
    let r = contrib.post(
        "/ws/au/api/2.0/mlflow/experiments/create",
        json!({ "name": "via-mlflow" }),
    );
    r.ok();
    // reading does not make records; the audit log is the Owner's
    assert_eq!(contrib.get("/api/v1/workspaces/au/audit").status, 403);
    let log = owner.get("/api/v1/workspaces/au/audit").ok();
    let entries = log["entries"].as_array().unwrap();
    let find = |actor: &str, action: &str| {
        entries
            .iter()
            .find(|e| e["actor"] == actor && e["action"].as_str().unwrap().contains(action))
            .unwrap_or_else(|| panic!("no {actor} {action} in {log}"))
    };
    let e = find("au-owner", "PUT /api/v1/workspaces/{ws}/roles/{user}");
    assert_eq!(e["object"], "/api/v1/workspaces/au/roles/au-contrib");
    assert_eq!(e["result"], "ok");
    assert_eq!(e["workspace"], "au");
    let e = find(
        "au-contrib",
        "DELETE /api/v1/workspaces/{ws}/experiments/{id}",
    );
    assert_eq!(e["status"], 200);
    let denied = entries
        .iter()
        .find(|e| e["actor"] == "au-contrib" && e["result"] == "denied")
        .expect("the denied role change is recorded");
    assert_eq!(denied["status"], 403);
    let e = find("au-contrib", "/mlflow/experiments/create");
    assert!(
        e["object"].as_str().unwrap().contains("name=via-mlflow"),
        "{e}"
    );
    assert!(
        !entries
            .iter()
            .any(|e| e["action"].as_str().unwrap().starts_with("GET"))
    );
    // filters and paging
    let only = owner
        .get("/api/v1/workspaces/au/audit?actor=au-owner&max_results=1")
        .ok();
    assert_eq!(only["entries"].as_array().unwrap().len(), 1);
    assert!(only["next_page_token"].is_string() || only["entries"][0]["actor"] == "au-owner");
    let denied_only = owner.get("/api/v1/workspaces/au/audit?result=denied").ok();
    assert!(
        denied_only["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["result"] == "denied")
    );
    assert_eq!(
        owner.get("/api/v1/workspaces/au/audit?result=maybe").status,
        400
    );
    // token creation and user creation are in the host log (admin)
    let host = admin.get("/api/v1/audit?action=/api/v1/tokens").ok();
    assert!(host["entries"].as_array().unwrap().len() >= 2, "{host}");
    assert!(
        !host.to_string().contains(&t_owner),
        "a token value is in the audit log"
    );
    // deleting the workspace keeps its records for the admin
    admin.delete("/api/v1/workspaces/au").ok();
    let after = admin.get("/api/v1/audit?workspace=au").ok();
    assert!(after["entries"].as_array().unwrap().len() >= 5, "{after}");
}

#[test]
fn cli_manages_users_tokens_roles_and_reads_the_audit_log() {
    let s = Server::start(Backend::Sqlite);
    let (ok, out, err) = s.cli(&["workspace", "create", "cli-ws"]);
    assert!(ok, "{err}");
    let _ = out;
    let (ok, _, err) = s.cli(&["user", "create", "carol"]);
    assert!(ok, "{err}");
    let (ok, token, err) = s.cli(&[
        "token",
        "create",
        "--user",
        "carol",
        "--description",
        "laptop",
        "--expires-in",
        "30d",
    ]);
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    assert!(token.starts_with("atr_"), "{token}");
    assert!(err.contains("shown once"), "{err}");
    let (ok, _, err) = s.cli(&["role", "assign", "carol", "contributor", "-w", "cli-ws"]);
    assert!(ok, "{err}");
    let (ok, out, _) = s.cli(&["role", "list", "-w", "cli-ws"]);
    assert!(
        ok && out.contains("carol") && out.contains("Contributor"),
        "{out}"
    );
    // carol, with her own token, works in cli-ws and cannot manage roles
    let as_carol = |args: &[&str]| Server::cli_with_token(&s.url, &token, args);
    let (ok, out, err) = as_carol(&["whoami"]);
    assert!(
        ok && out.contains("carol") && out.contains("cli-ws"),
        "{out}{err}"
    );
    let (ok, _, err) = as_carol(&["experiment", "create", "mine", "-w", "cli-ws"]);
    assert!(ok, "{err}");
    let (ok, _, err) = as_carol(&["role", "assign", "carol", "owner", "-w", "cli-ws"]);
    assert!(!ok && err.contains("PERMISSION_DENIED"), "{err}");
    // without -w: the default workspace, where she has no role; the error lists hers only
    let (ok, _, err) = as_carol(&["experiment", "list"]);
    assert!(
        !ok && err.contains(
            "workspace 'default' does not exist (or you have no role on it; your workspaces: cli-ws)"
        ),
        "{err}"
    );
    // no token at all
    let (ok, _, err) = Server::cli_with_token(&s.url, "", &["experiment", "list"]);
    assert!(!ok && err.contains("UNAUTHENTICATED"), "{err}");
    // the CLI finds the bootstrap token in ATRIUM_DATA_DIR
    // (with no saved login: the profile comes before the data directory)
    let (ok, out, err) = atrium_tests::cli_raw(
        &["whoami"],
        &[
            ("ATRIUM_SERVER", &s.url),
            ("ATRIUM_DATA_DIR", s.data_dir.to_str().unwrap()),
        ],
        &s.data_dir,
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("admin"), "{out}");
    // the audit log, filtered
    let (ok, out, err) = s.cli(&[
        "audit", "list", "-w", "cli-ws", "--actor", "carol", "-o", "json",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["actor"] == "carol"));
    assert!(entries.iter().any(|e| e["result"] == "denied"), "{out}");
    assert!(
        entries
            .iter()
            .any(|e| e["action"].as_str().unwrap().contains("/experiments"))
    );
    // revoke carol's token from the CLI
    let (ok, out, _) = s.cli(&["token", "list", "--user", "carol", "-o", "json"]);
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    let id = v["tokens"][0]["id"].as_str().unwrap().to_string();
    let (ok, _, err) = s.cli(&["token", "revoke", &id]);
    assert!(ok, "{err}");
    let (ok, _, err) = as_carol(&["whoami"]);
    assert!(!ok && err.contains("revoked"), "{err}");
    let (ok, out, _) = s.cli(&["user", "list"]);
    assert!(
        ok && out.contains("carol") && out.contains("admin"),
        "{out}"
    );
}

#[test]
fn access_control_on_postgres() {
    let s = Server::start(Backend::Postgres);
    let admin = s.http();
    admin.put("/api/v1/workspaces/pg-acl", json!({})).ok();
    let t = user_token(&admin, "pg-reader");
    assign(&admin, "pg-acl", "pg-reader", "Reader");
    let reader = s.http_as(Some(&t));
    reader.get("/api/v1/workspaces/pg-acl/experiments").ok();
    assert_eq!(
        reader
            .post(
                "/api/v1/workspaces/pg-acl/experiments",
                json!({ "name": "x" })
            )
            .status,
        403
    );
    assert_eq!(
        reader.get("/api/v1/workspaces/default/experiments").status,
        404
    );
    let log = admin.get("/api/v1/workspaces/pg-acl/audit").ok();
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["result"] == "denied")
    );
    let id = reader.get("/api/v1/tokens").ok()["tokens"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    admin.delete(&format!("/api/v1/tokens/{id}")).ok();
    assert_eq!(reader.get("/api/v1/whoami").status, 401);
}

/// Waits for a job to end; returns it.
fn wait_job(h: &Http, ws: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let j = h.get(&format!("/api/v1/workspaces/{ws}/jobs/{id}")).ok();
        if matches!(
            j["state"].as_str(),
            Some("Completed" | "Failed" | "Canceled")
        ) {
            return j;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} did not end: {j}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn secrets_are_handed_out_by_owners_and_stay_out_of_the_audit_log() {
    const VALUE: &str = "sx-VALUE-7f3a9c1e-never-shown";
    let s = Server::start(Backend::Sqlite);
    let admin = s.http();
    admin.put("/api/v1/workspaces/sx", json!({})).ok();
    let t = user_token(&admin, "sx-contrib");
    assign(&admin, "sx", "sx-contrib", "Contributor");
    let contrib = s.http_as(Some(&t));
    // a Contributor stores a secret (the record names its creator)
    let r = contrib.put(
        "/api/v1/workspaces/sx/secrets/API_TOKEN",
        json!({ "value": VALUE }),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["created_by"], "sx-contrib");
    // ... but cannot hand it to a command or a datastore
    let job = json!({ "type": "command", "command": {
        "command": "echo \"length ${#API_TOKEN}\"", "secrets": ["API_TOKEN"] } });
    let r = contrib.post("/api/v1/workspaces/sx/jobs", job.clone());
    assert_eq!(r.status, 403, "{}", r.json);
    assert!(r.message().contains("Owner"), "{}", r.message());
    let r = contrib.put(
        "/api/v1/workspaces/sx/datastores/vault",
        json!({ "component": "storage-fs", "version": "0.1.0", "secrets": ["API_TOKEN"] }),
    );
    assert_eq!(r.status, 403, "{}", r.json);
    // the Owner (here the admin) can; the use is audited
    let j = admin.post("/api/v1/workspaces/sx/jobs", job).ok();
    let id = j["id"].as_str().unwrap().to_string();
    let done = wait_job(&admin, "sx", &id);
    assert_eq!(done["state"], "Completed", "{done}");
    let logs = admin.get(&format!("/api/v1/workspaces/sx/jobs/{id}/logs"));
    let text = String::from_utf8_lossy(&logs.bytes).to_string();
    assert!(text.contains(&format!("length {}", VALUE.len())), "{text}");
    let log = admin.get("/api/v1/workspaces/sx/audit").ok();
    let entries = log["entries"].as_array().unwrap();
    let used = entries
        .iter()
        .find(|e| e["action"] == "secret.use")
        .unwrap_or_else(|| panic!("no secret.use in {log}"));
    assert_eq!(used["actor"], format!("job:{id}"));
    assert_eq!(used["object"], "secret:API_TOKEN");
    assert!(
        entries.iter().any(|e| e["actor"] == "sx-contrib"
            && e["action"] == "PUT /api/v1/workspaces/{ws}/secrets/{name}"
            && e["result"] == "ok"),
        "{log}"
    );
    // the value is in no audit record, no answer above, and no log line of the server
    let everything = admin.get("/api/v1/audit?max_results=1000").ok().to_string();
    assert!(
        !everything.contains(VALUE),
        "a secret value is in the audit log"
    );
    let server_log = std::fs::read_to_string(&s.log).unwrap_or_default();
    assert!(
        !server_log.contains(VALUE),
        "a secret value is in the server log"
    );
}

/// Two replicas sharing PostgreSQL: a role removed or a token revoked through one is refused by
/// the other, which holds the verification and the role in its cache: the change is announced
/// with NOTIFY and moves the other replica's access epoch (without the announcement it would
/// take up to the cache's 2 s; the test allows 1 s).
#[test]
fn changes_on_one_replica_reach_the_caches_of_another() {
    let a = Server::start(Backend::Postgres);
    let dir = tempfile::tempdir().unwrap();
    let b = Server::start_in(dir.path(), a.database_url.clone());
    let admin = a.http();
    let t = user_token(&admin, "replica-user");
    assign(&admin, "default", "replica-user", "Reader");
    let on_b = b.http_as(Some(&t));
    let path = "/api/v1/workspaces/default/experiments";
    let within_a_second = |status: u16| {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            let r = on_b.get(path);
            if r.status == status {
                return r;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "replica b still answers {} {}",
                r.status,
                r.json
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // b verifies the token and reads the role once, then serves both from its cache
    on_b.get(path).ok();
    on_b.get(path).ok();
    admin
        .delete("/api/v1/workspaces/default/roles/replica-user")
        .ok();
    within_a_second(404);
    assign(&admin, "default", "replica-user", "Reader");
    within_a_second(200);
    let id = admin.get("/api/v1/tokens?user=replica-user").ok()["tokens"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    admin.delete(&format!("/api/v1/tokens/{id}")).ok();
    let r = within_a_second(401);
    assert!(r.message().contains("revoked"), "{}", r.message());
}
