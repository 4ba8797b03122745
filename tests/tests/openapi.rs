//! The OpenAPI document and the docs page; strict request bodies and query strings with
//! MLflow's names as aliases.

use std::collections::BTreeSet;

use atrium_tests::{Backend, Server, json};
use serde_json::Value;

const WS: &str = "/api/v1/workspaces/default";

/// The OpenAPI path of a route of the table (`{*rest}` → `{rest}`, actions suffixed).
fn openapi_path(route: &Value) -> String {
    let mut p = route["path"].as_str().unwrap().replace("{*", "{");
    if let Some(a) = route["action"].as_str() {
        p.push(':');
        p.push_str(a);
    }
    p
}

#[test]
fn the_document_covers_every_native_route_with_its_policy() {
    let s = Server::start(Backend::Sqlite);
    // public: no credentials
    let anon = s.http_as(None);
    let r = anon.get("/api/v1/openapi.json");
    assert_eq!(r.status, 200, "{}", r.json);
    let doc = r.json;
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = s.http().get("/api/v1/routes").ok();
    let mut ids = BTreeSet::new();
    let mut native = 0;
    for route in routes["routes"].as_array().unwrap() {
        let path = route["path"].as_str().unwrap();
        if !(path.starts_with("/api/v1/") || path == "/health" || path == "/api/docs") {
            continue;
        }
        native += 1;
        let method = route["method"].as_str().unwrap().to_ascii_lowercase();
        let op = &doc["paths"][openapi_path(route)][&method];
        assert!(op.is_object(), "{method} {path} is not in the document");
        assert_eq!(op["x-atrium-policy"], route["policy"], "{method} {path}");
        assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(
            op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error",
            "{method} {path}"
        );
        assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()));
        if route["policy"] == "public" {
            assert_eq!(op["security"], json!([]));
        }
    }
    assert!(native > 80, "only {native} native routes");
    let ops: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(ops, native, "the document has operations the table lacks");
    // every $ref names a schema of the document
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (i, _) in text.match_indices("\"#/components/schemas/") {
        let rest = &text[i + 22..];
        let name = &rest[..rest.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
    }
    // a typed response: the run schema lists the fields a run answers
    let run = &schemas["Run"]["properties"];
    for f in ["id", "experiment_id", "status", "metrics", "params", "tags"] {
        assert!(run[f].is_object(), "Run.{f} missing: {run}");
    }
    // strict request bodies are documented as such
    let search = &doc["paths"]["/api/v1/workspaces/{ws}/runs:search"]["post"];
    let body = &search["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["additionalProperties"], false, "{body}");
    assert!(body["properties"]["filter"].is_object());
    // query parameters come from the handler's query type
    let list = &doc["paths"]["/api/v1/workspaces/{ws}/runs"]["get"]["parameters"];
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for q in [
        "experiment_id",
        "filter",
        "order_by",
        "view",
        "max_results",
        "page_token",
    ] {
        assert!(names.contains(&q), "{q} not in {names:?}");
    }

    // the docs page is self-contained and renders the document
    let page = anon.get("/api/docs");
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.bytes);
    assert!(html.contains("/api/v1/openapi.json"), "{html}");
    assert!(
        !html.contains("<script src="),
        "the page loads no external script"
    );
}

#[test]
fn request_bodies_and_queries_are_strict_with_mlflow_aliases() {
    let s = Server::start(Backend::Sqlite);
    let h = s.http();
    let description = h.get("/api/v1/workspaces/default").ok()["description"].clone();
    let exp = h
        .post(&format!("{WS}/experiments"), json!({ "name": "strict" }))
        .ok();
    let eid = exp["id"].as_i64().unwrap();
    for lr in ["0.1", "0.2"] {
        let run = h
            .post(
                &format!("{WS}/runs"),
                json!({ "experiment_id": eid, "run_name": format!("lr-{lr}") }),
            )
            .ok();
        let id = run["id"].as_str().unwrap();
        assert_eq!(
            run["name"],
            format!("lr-{lr}"),
            "run_name is an alias of name"
        );
        h.post(
            &format!("{WS}/runs/{id}/log"),
            json!({ "params": { "lr": lr } }),
        )
        .ok();
    }
    let search = |body: Value| h.post(&format!("{WS}/runs:search"), body);

    // the typo is refused, naming the field, instead of answering every run
    let r = search(json!({ "experiment_ids": [eid], "fliter": "params.lr = '0.1'" }));
    assert_eq!(r.status, 400, "{}", r.json);
    assert_eq!(r.code(), "INVALID_PARAMETER_VALUE");
    assert!(r.message().contains("fliter"), "{}", r.message());
    assert!(
        r.message().contains("filter"),
        "the message lists the known fields"
    );

    // MLflow's names work as aliases
    let one = search(
        json!({ "experiment_ids": [eid.to_string()], "filter_string": "params.lr = '0.1'" }),
    )
    .ok();
    assert_eq!(one["runs"].as_array().unwrap().len(), 1, "{one}");
    let native = search(
        json!({ "experiment_ids": [eid], "filter": "params.lr = '0.2'", "run_view_type": "ALL" }),
    )
    .ok();
    assert_eq!(native["runs"].as_array().unwrap().len(), 1, "{native}");

    // the same for query strings
    let r = h.get(&format!("{WS}/runs?experiment_id={eid}&fliter=x"));
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(r.message().contains("fliter"), "{}", r.message());
    let r = h.get(&format!("{WS}/runs?experiment_id={eid}&max_results=many"));
    assert_eq!(r.status, 400);
    assert!(r.message().contains("max_results"), "{}", r.message());
    let one = h
        .get(&format!(
            "{WS}/runs?experiment_id={eid}&filter_string=params.lr+%3D+%270.2%27"
        ))
        .ok();
    assert_eq!(one["runs"].as_array().unwrap().len(), 1, "{one}");

    // unknown fields elsewhere, nested ones and the flattened deployment settings included
    let run = one["runs"][0]["id"].as_str().unwrap().to_string();
    let cases = [
        (
            "PUT",
            "/api/v1/workspaces/default".to_string(),
            json!({ "descripton": "x" }),
            "descripton",
        ),
        (
            "POST",
            format!("{WS}/experiments"),
            json!({ "name": "e2", "tag": {} }),
            "tag",
        ),
        (
            "PATCH",
            format!("{WS}/runs/{run}"),
            json!({ "state": "FINISHED" }),
            "state",
        ),
        (
            "POST",
            format!("{WS}/runs/{run}/log"),
            json!({ "metrics": [{ "key": "m", "value": 1, "stepp": 2 }] }),
            "stepp",
        ),
        (
            "POST",
            format!("{WS}/runs:bulk"),
            json!({ "runs": [{ "name": "b", "metric": [] }] }),
            "metric",
        ),
        (
            "PUT",
            format!("{WS}/endpoints/strict-ep/deployments/blue"),
            json!({ "model": "m/1", "instance": 2 }),
            "instance",
        ),
        (
            "POST",
            "/api/v1/gc".to_string(),
            json!({ "workspaces": "default" }),
            "workspaces",
        ),
        (
            "POST",
            "/api/v1/tokens".to_string(),
            json!({ "expires": 5 }),
            "expires",
        ),
    ];
    for (method, path, body, field) in cases {
        let r = h.raw(method, &path, Some(body.to_string().into_bytes()));
        assert_eq!(r.status, 400, "{method} {path} {body}: {}", r.json);
        assert_eq!(r.code(), "INVALID_PARAMETER_VALUE", "{method} {path}");
        assert!(
            r.message().contains(field),
            "{method} {path}: {}",
            r.message()
        );
    }
    // no text may hold a NUL character (PostgreSQL cannot store one: it was a 500 there)
    let r = h.post(
        &format!("{WS}/runs/{run}/log"),
        json!({ "tags": { "t": "a\u{0}b" } }),
    );
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(r.message().contains("NUL"), "{}", r.message());
    let r = h.get(&format!("{WS}/audit?object=a%00b"));
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(r.message().contains("'object'"), "{}", r.message());
    let r = h.get(&format!("{WS}/models/a%00b"));
    assert_eq!(r.status, 400, "{}", r.json);
    assert!(
        r.message().contains("path parameter 'name'"),
        "{}",
        r.message()
    );
    let r = h.post(
        &format!("{WS}/runs:search"),
        json!({ "filter": "params.lr = 'a\u{0}'" }),
    );
    assert_eq!(r.status, 400, "{}", r.json);

    // nothing was stored by the refused calls
    let runs = h.get(&format!("{WS}/runs?view=ALL&max_results=100")).ok();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2);
    let ws = h.get("/api/v1/workspaces/default").ok();
    assert_eq!(ws["description"], description);
    let exps = h.get(&format!("{WS}/experiments?view=ALL")).ok();
    assert!(
        exps["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["name"] != "e2")
    );
}
