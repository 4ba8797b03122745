"""Every route the SDK calls: name -> (method, path template as the OpenAPI document writes it).

The test suite checks this table against a live server's ``/api/v1/openapi.json`` (every route
exists with its method, every query parameter the SDK sends is declared), so a route change
that breaks the SDK fails a test. ``{rest}`` parameters keep their slashes.
"""

from __future__ import annotations

_V1 = "/api/v1"
_WS = _V1 + "/workspaces/{ws}"

#: name -> (HTTP method, path)
ROUTES = {
    # host-wide
    "health": ("GET", "/health"),
    "openapi": ("GET", _V1 + "/openapi.json"),
    "whoami": ("GET", _V1 + "/whoami"),
    "users.list": ("GET", _V1 + "/users"),
    "users.create": ("POST", _V1 + "/users"),
    "users.get": ("GET", _V1 + "/users/{user}"),
    "users.delete": ("DELETE", _V1 + "/users/{user}"),
    "tokens.list": ("GET", _V1 + "/tokens"),
    "tokens.create": ("POST", _V1 + "/tokens"),
    "tokens.delete": ("DELETE", _V1 + "/tokens/{id}"),
    "audit.host": ("GET", _V1 + "/audit"),
    "gc": ("POST", _V1 + "/gc"),
    "workspaces.list": ("GET", _V1 + "/workspaces"),
    "workspaces.put": ("PUT", _WS),
    "workspaces.get": ("GET", _WS),
    "workspaces.delete": ("DELETE", _WS),
    # roles and audit of a workspace
    "roles.list": ("GET", _WS + "/roles"),
    "roles.put": ("PUT", _WS + "/roles/{user}"),
    "roles.delete": ("DELETE", _WS + "/roles/{user}"),
    "audit.list": ("GET", _WS + "/audit"),
    # tracking
    "experiments.list": ("GET", _WS + "/experiments"),
    "experiments.create": ("POST", _WS + "/experiments"),
    "experiments.get": ("GET", _WS + "/experiments/{id}"),
    "experiments.update": ("PATCH", _WS + "/experiments/{id}"),
    "experiments.delete": ("DELETE", _WS + "/experiments/{id}"),
    "experiments.restore": ("POST", _WS + "/experiments/{id}:restore"),
    "runs.create": ("POST", _WS + "/runs"),
    "runs.search": ("POST", _WS + "/runs:search"),
    "runs.get": ("GET", _WS + "/runs/{id}"),
    "runs.update": ("PATCH", _WS + "/runs/{id}"),
    "runs.delete": ("DELETE", _WS + "/runs/{id}"),
    "runs.restore": ("POST", _WS + "/runs/{id}:restore"),
    "runs.log": ("POST", _WS + "/runs/{id}/log"),
    "runs.metric": ("GET", _WS + "/runs/{id}/metrics/{key}"),
    "runs.delete_tag": ("DELETE", _WS + "/runs/{id}/tags/{key}"),
    "artifacts.list": ("GET", _WS + "/runs/{id}/artifacts"),
    "artifacts.get": ("GET", _WS + "/runs/{id}/artifacts/{path}"),
    "artifacts.put": ("PUT", _WS + "/runs/{id}/artifacts/{path}"),
    "artifacts.delete": ("DELETE", _WS + "/runs/{id}/artifacts/{path}"),
    # datasets
    "datasets.list": ("GET", _WS + "/datasets"),
    "datasets.upload": ("POST", _WS + "/datasets/{name}/versions"),
    "datasets.get": ("GET", _WS + "/datasets/{name}/versions/{version}"),
    "datasets.delete": ("DELETE", _WS + "/datasets/{name}/versions/{version}"),
    "datasets.data": ("GET", _WS + "/datasets/{name}/versions/{version}/data"),
    # jobs, sweeps, AutoML
    "jobs.list": ("GET", _WS + "/jobs"),
    "jobs.submit": ("POST", _WS + "/jobs"),
    "jobs.get": ("GET", _WS + "/jobs/{id}"),
    "jobs.cancel": ("POST", _WS + "/jobs/{id}:cancel"),
    "jobs.logs": ("GET", _WS + "/jobs/{id}/logs"),
    "jobs.trials": ("GET", _WS + "/jobs/{id}/trials"),
    # registry
    "models.list": ("GET", _WS + "/models"),
    "models.get": ("GET", _WS + "/models/{name}"),
    "models.update": ("PATCH", _WS + "/models/{name}"),
    "models.delete": ("DELETE", _WS + "/models/{name}"),
    "models.versions": ("GET", _WS + "/models/{name}/versions"),
    "models.register": ("POST", _WS + "/models/{name}/versions"),
    "models.version": ("GET", _WS + "/models/{name}/versions/{version}"),
    "models.update_version": ("PATCH", _WS + "/models/{name}/versions/{version}"),
    "models.delete_version": ("DELETE", _WS + "/models/{name}/versions/{version}"),
    "models.file": ("GET", _WS + "/models/{name}/versions/{version}/files/{path}"),
    "models.predict": ("POST", _WS + "/models/{name}/versions/{version}/predict"),
    "models.set_alias": ("PUT", _WS + "/models/{name}/aliases/{alias}"),
    "models.delete_alias": ("DELETE", _WS + "/models/{name}/aliases/{alias}"),
    # endpoints
    "endpoints.list": ("GET", _WS + "/endpoints"),
    "endpoints.put": ("PUT", _WS + "/endpoints/{name}"),
    "endpoints.get": ("GET", _WS + "/endpoints/{name}"),
    "endpoints.delete": ("DELETE", _WS + "/endpoints/{name}"),
    "endpoints.regenerate_key": ("POST", _WS + "/endpoints/{name}:regenerate-key"),
    "endpoints.deploy": ("PUT", _WS + "/endpoints/{name}/deployments/{deployment}"),
    "endpoints.undeploy": ("DELETE", _WS + "/endpoints/{name}/deployments/{deployment}"),
    "endpoints.traffic": ("PUT", _WS + "/endpoints/{name}/traffic"),
    "endpoints.metrics": ("GET", _WS + "/endpoints/{name}/metrics"),
    # scoring (outside the document: the endpoint's own routes)
    "score.invocations": ("POST", "/endpoints/{name}/invocations"),
    "score.raw": ("POST", "/endpoints/{name}/score"),
    # environments and compute
    "environments.list": ("GET", _WS + "/environments"),
    "environments.create": ("POST", _WS + "/environments"),
    "environments.versions": ("GET", _WS + "/environments/{name}"),
    "environments.get": ("GET", _WS + "/environments/{name}/versions/{version}"),
    "compute.list": ("GET", _WS + "/compute"),
    "compute.put": ("PUT", _WS + "/compute/{name}"),
    "compute.get": ("GET", _WS + "/compute/{name}"),
    "compute.delete": ("DELETE", _WS + "/compute/{name}"),
    # pipelines and schedules
    "pipelines.list": ("GET", _WS + "/pipelines"),
    "pipelines.publish": ("POST", _WS + "/pipelines"),
    "pipelines.versions": ("GET", _WS + "/pipelines/{name}"),
    "pipelines.get": ("GET", _WS + "/pipelines/{name}/versions/{version}"),
    "pipelines.run": ("POST", _WS + "/pipelines/{name}/runs"),
    "pipelines.plan": ("POST", _WS + "/pipelines/{name}/plan"),
    "pipeline_runs.list": ("GET", _WS + "/pipeline-runs"),
    "pipeline_runs.get": ("GET", _WS + "/pipeline-runs/{id}"),
    "pipeline_runs.rerun": ("POST", _WS + "/pipeline-runs/{id}/rerun"),
    "pipeline_runs.cancel": ("POST", _WS + "/pipeline-runs/{id}/cancel"),
    "schedules.list": ("GET", _WS + "/schedules"),
    "schedules.put": ("PUT", _WS + "/schedules/{name}"),
    "schedules.get": ("GET", _WS + "/schedules/{name}"),
    "schedules.enable": ("POST", _WS + "/schedules/{name}/enable"),
    "schedules.disable": ("POST", _WS + "/schedules/{name}/disable"),
    "schedules.delete": ("DELETE", _WS + "/schedules/{name}"),
    # components, datastores, secrets
    "components.list": ("GET", _WS + "/components"),
    "components.push": ("PUT", _WS + "/components/{name}/versions/{version}"),
    "components.get": ("GET", _WS + "/components/{name}/versions/{version}"),
    "components.delete": ("DELETE", _WS + "/components/{name}/versions/{version}"),
    "datastores.list": ("GET", _WS + "/datastores"),
    "datastores.put": ("PUT", _WS + "/datastores/{name}"),
    "datastores.get": ("GET", _WS + "/datastores/{name}"),
    "datastores.delete": ("DELETE", _WS + "/datastores/{name}"),
    "datastores.set_default": ("POST", _WS + "/datastores/{name}/default"),
    "secrets.list": ("GET", _WS + "/secrets"),
    "secrets.get": ("GET", _WS + "/secrets/{name}"),
    "secrets.put": ("PUT", _WS + "/secrets/{name}"),
    "secrets.delete": ("DELETE", _WS + "/secrets/{name}"),
}

#: Routes outside the OpenAPI document (the scoring protocol of an endpoint).
UNDOCUMENTED = {"score.invocations", "score.raw"}

#: The query parameters the SDK sends per route (checked against the document too).
QUERY = {
    "tokens.list": {"user", "all"},
    "audit.host": {"workspace", "actor", "action", "object", "result", "since", "until", "max_results", "page_token"},
    "audit.list": {"actor", "action", "object", "result", "since", "until", "max_results", "page_token"},
    "experiments.list": {"filter", "order_by", "view", "max_results", "page_token"},
    "runs.metric": {"max_points"},
    "artifacts.list": {"path"},
    "datasets.list": {"name"},
    "datasets.get": {"preview"},
    "jobs.list": {"state", "limit"},
    "jobs.logs": {"tail", "follow"},
    "models.list": {"max_results", "page_token"},
    "pipeline_runs.list": {"pipeline", "limit"},
}
