#!/usr/bin/env bash
# Runs MLflow's own REST tracking and model-registry test modules (the vendored copy in
# tests/peer/mlflow, MLflow 3.11 sources with the mlflow==3.17.2 client) against `atrium serve`,
# leaving out the tests that do not count (see tests/peer/README.md): MLflow features Atrium does
# not offer (GenAI: traces, spans, assessments, prompts, the AI gateway, evaluation datasets,
# scorers, issues; routes only MLflow's own UI calls: GraphQL, the ajax bulk metric history,
# prompt lab), tests that fail against a stock `mlflow server` 3.17.2 too (version skew), and
# tests of MLflow's own server internals. Every other test must pass.
# Usage: tests/peer/scope.sh ATRIUM_BINARY [pytest args...]. Prints pytest's summary line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out_of_scope=(
  # GenAI and gateway families
  graphql trace span assessment prompt gateway secret endpoint model_definition provider
  evaluation_dataset dataset_to_experiments dataset_from_experiments add_multiple_experiments
  dataset_experiment_association idempotent_add idempotent_remove client_api_add_remove
  scorer online_scoring issue
  # the ajax bulk metric history route (MLflow's UI only)
  test_get_metric_history_bulk_rejects test_get_metric_history_bulk_returns
  test_get_metric_history_bulk_respects test_get_metric_history_bulk_calls
  # fail against stock mlflow server 3.17.2 too (version skew), or test its internals
  non_local_source validation_regex bulk_interval_respects_max_results list_models
  test_copy_model_version_flow test_create_and_query_model_version_flow
  test_delete_model_version_flow test_get_model_version test_set_delete_model_version_tag_flow
  test_set_delete_registered_model_alias_and_get_model_version_by_alias_flow
  test_set_model_version_tag_with_empty_string_as_value test_update_model_version_flow
  # assert that the server keeps artifacts in a local file:// root the client writes to itself
  # (the stock fixture's default_artifact_root=tmp_path.as_uri()); Atrium's artifacts go through
  # the server into the workspace datastore, behind access control
  test_artifacts test_create_model_version_with_file_uri test_create_model_version_with_path_source
  test_logging_model_with_local_artifact_uri
)
# MLflow's conftest builds and serves a wheel of MLflow itself from the git top level when CI=true
# (its --serve-wheel default); here that top level is Atrium and the client under test is the
# released mlflow wheel, so that fixture must stay off whatever the caller's environment says.
export CI=false
expr=$(IFS='|'; echo "${out_of_scope[*]}" | sed 's/|/ or /g')
exec "$here/mlflow/run.sh" "$@" -k "not ($expr)"
