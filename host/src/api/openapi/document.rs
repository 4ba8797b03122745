//! Builds the OpenAPI 3.1 document from the route table: a path per route template, an
//! operation per documented route with its policy, its parameters and bodies from the
//! handler's types, and the one error shape as every operation's `default` response.

use serde_json::{Map, Value, json};

use super::describe::{Generators, OpDoc};
use crate::api::error::ErrorBody;
use crate::api::routes::RouteSpec;
use crate::auth::Policy;

/// What a caller needs, in words, for a policy.
fn needs(p: Policy) -> &'static str {
    match p {
        Policy::Public => "Anyone, without credentials.",
        Policy::Authenticated => "Any valid API token.",
        Policy::Admin => "A server admin.",
        Policy::Read => {
            "Reader on the workspace (or no credentials, on a workspace open to anonymous readers)."
        }
        Policy::Write => "Contributor on the workspace.",
        Policy::Log => "Contributor on the workspace (not recorded call by call in the audit log).",
        Policy::Own => "Owner of the workspace.",
        Policy::PutWorkspace => "A server admin to create the workspace; its Owner to change it.",
        Policy::Scoring => {
            "The endpoint's key, or a token with Reader on the endpoint's workspace."
        }
    }
}

/// The OpenAPI path of a route template: `{*rest}` becomes `{rest}`, an action route gets its
/// `:action` suffix; with the names of the path parameters.
fn openapi_path(template: &str, action: Option<&str>) -> (String, Vec<(String, bool)>) {
    let mut params = Vec::new();
    let segments: Vec<String> = template
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let (name, wildcard) = match name.strip_prefix('*') {
                        Some(n) => (n, true),
                        None => (name, false),
                    };
                    params.push((name.to_string(), wildcard));
                    format!("{{{name}}}")
                }
                None => seg.to_string(),
            },
        )
        .collect();
    let mut path = segments.join("/");
    if let Some(a) = action {
        path.push(':');
        path.push_str(a);
    }
    (path, params)
}

/// `GET /api/v1/workspaces/{ws}/runs/{id}` → `get_workspaces_ws_runs_id`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    let rest = path.strip_prefix("/api/v1").unwrap_or(path);
    for part in rest.split(['/', ':', '.']).filter(|p| !p.is_empty()) {
        id.push('_');
        id.extend(
            part.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .map(|c| if c == '-' { '_' } else { c }),
        );
    }
    id
}

/// The group of an operation in the docs: the resource after `/api/v1` or after the
/// workspace (`runs`, `models`, …).
fn tag(path: &str) -> String {
    let rest = path
        .strip_prefix("/api/v1/")
        .or_else(|| path.strip_prefix("/api/"))
        .unwrap_or(path.trim_start_matches('/'));
    let mut parts = rest.split('/');
    let first = parts.next().unwrap_or("");
    let resource = match (first, parts.next(), parts.next()) {
        ("workspaces", Some("{ws}"), Some(r)) => r,
        _ => first,
    };
    let resource = resource.split(':').next().unwrap_or(resource);
    resource.split('.').next().unwrap_or(resource).to_string()
}

fn parameters(path_params: &[(String, bool)], op: &OpDoc) -> Vec<Value> {
    let mut out: Vec<Value> = path_params
        .iter()
        .map(|(name, wildcard)| {
            let mut p = json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": { "type": "string", "minLength": 1 },
            });
            if *wildcard {
                p["description"] = json!("The rest of the path; may contain '/'.");
                p["allowReserved"] = json!(true);
            }
            p
        })
        .collect();
    if let Some(q) = &op.query {
        let required: Vec<&str> = q
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = q.get("properties").and_then(Value::as_object) {
            for (name, schema) in props {
                let mut schema = schema.clone();
                let description = schema.as_object_mut().and_then(|s| s.remove("description"));
                let mut p = json!({
                    "name": name,
                    "in": "query",
                    "required": required.contains(&name.as_str()),
                    "schema": schema,
                });
                if let Some(d) = description {
                    p["description"] = d;
                }
                out.push(p);
            }
        }
    }
    out
}

fn content(items: &[(&'static str, Value)]) -> Value {
    let mut m = Map::new();
    for (media, schema) in items {
        let entry = if schema.is_null() {
            json!({})
        } else {
            json!({ "schema": schema })
        };
        m.insert((*media).to_string(), entry);
    }
    Value::Object(m)
}

fn operation(
    r: &RouteSpec,
    summary: &str,
    op: &OpDoc,
    path: &str,
    params: &[(String, bool)],
) -> Value {
    let mut o = json!({
        "operationId": operation_id(&r.method, path),
        "summary": summary,
        "tags": [tag(path)],
        "description": format!("Needs: {}", needs(r.policy)),
        "x-atrium-policy": r.policy,
    });
    o["security"] = if r.policy == Policy::Public {
        json!([])
    } else {
        json!([{ "bearer": [] }, { "basic": [] }])
    };
    let ps = parameters(params, op);
    if !ps.is_empty() {
        o["parameters"] = Value::Array(ps);
    }
    if let Some(b) = &op.body {
        o["requestBody"] = json!({ "required": b.required, "content": content(&b.content) });
    }
    let mut responses = Map::new();
    for resp in &op.responses {
        let mut v = json!({ "description": resp.description });
        if !resp.content.is_empty() {
            v["content"] = content(&resp.content);
        }
        responses.insert(resp.status.to_string(), v);
    }
    responses.insert(
        "default".into(),
        json!({
            "description": "An error, in the one error shape",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
        }),
    );
    o["responses"] = Value::Object(responses);
    o
}

/// The document of every documented route of the table.
pub fn build(table: &[RouteSpec]) -> Value {
    let mut g = Generators::default();
    let mut paths = Map::new();
    for r in table {
        let Some(d) = r.doc else { continue };
        let op = (d.describe)(&mut g);
        let (path, params) = openapi_path(&r.path, r.action);
        let o = operation(r, d.summary, &op, &path, &params);
        let item = paths.entry(path).or_insert_with(|| json!({}));
        item[r.method.to_ascii_lowercase()] = o;
    }
    // the error shape, from the struct every error response serializes
    g.response::<ErrorBody>();
    let schemas = g.take_definitions();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Atrium native API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The native REST API of Atrium (`/api/v1`), generated from the server's \
                route table and its handlers' request and response types. Authenticate with \
                `Authorization: Bearer <token>`. Request bodies and query strings are strict: an \
                unknown field or parameter is a 400 that names it. Every error is \
                `{\"error_code\", \"message\"}`. Each operation says which policy guards it \
                (`x-atrium-policy`).",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "servers": [{ "url": "/" }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API token." },
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Any user name, the API token as the password (the MLflow \
                        client's MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD).",
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_ids_and_tags() {
        let (p, params) = openapi_path("/api/v1/workspaces/{ws}/runs/{id}/metrics/{*key}", None);
        assert_eq!(p, "/api/v1/workspaces/{ws}/runs/{id}/metrics/{key}");
        assert_eq!(
            params,
            [
                ("ws".into(), false),
                ("id".into(), false),
                ("key".into(), true)
            ]
        );
        let (p, _) = openapi_path("/api/v1/workspaces/{ws}/runs/{id}", Some("restore"));
        assert_eq!(p, "/api/v1/workspaces/{ws}/runs/{id}:restore");
        assert_eq!(
            operation_id("POST", &p),
            "post_workspaces_ws_runs_id_restore"
        );
        assert_eq!(tag(&p), "runs");
        assert_eq!(tag("/api/v1/workspaces/{ws}/runs:search"), "runs");
        assert_eq!(tag("/api/v1/workspaces/{ws}"), "workspaces");
        assert_eq!(tag("/api/v1/openapi.json"), "openapi");
        assert_eq!(tag("/health"), "health");
        assert_eq!(tag("/api/docs"), "docs");
    }
}
