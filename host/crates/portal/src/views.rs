//! View models: what each page shows, as plain text and numbers (the host fills them from the
//! workspace service; nothing here knows HTTP or SQL). Every field is escaped when rendered
//! unless its name ends in `_json` (JSON for a script, serialized with [`script_json`]).

use askama::Template;

/// What every page's frame shows: who is signed in, the workspace switcher, the CSRF token.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The signed-in user (`None`: anonymous).
    pub user: Option<String>,
    /// Whether the user is a server admin.
    pub admin: bool,
    /// The workspace the page is in (empty outside one).
    pub ws: String,
    /// The caller's workspaces, for the switcher.
    pub workspaces: Vec<String>,
    /// The session's CSRF token, sent by htmx as `X-Atrium-Csrf` on every write.
    pub csrf: String,
    /// The caller's role in `ws`: `Reader`, `Contributor`, `Owner` (empty: none, anonymous read).
    pub role: String,
    /// Asset version for cache busting.
    pub v: &'static str,
    /// The section of the nav bar to highlight.
    pub section: &'static str,
    /// The page title.
    pub title: String,
}

impl Chrome {
    /// Whether the caller may change things in the workspace (Contributor or Owner).
    pub fn can_write(&self) -> bool {
        self.role == "Contributor" || self.role == "Owner"
    }
    /// Whether the caller owns the workspace.
    pub fn can_own(&self) -> bool {
        self.role == "Owner"
    }
}

/// Serializes `v` as JSON safe inside `<script type="application/json">`: `<`, `>` and `&`
/// are written as `\u003c` etc., so user text cannot close the script element.
pub fn script_json<T: serde::Serialize>(v: &T) -> String {
    let s = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// `GET /ui/login`.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Frame.
    pub chrome: Chrome,
    /// Where to go after signing in.
    pub next: String,
    /// Why the last try failed.
    pub error: Option<String>,
}

/// An error page (404, 403, 500) in the portal's frame.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// Frame.
    pub chrome: Chrome,
    /// HTTP status.
    pub status: u16,
    /// The API's error code.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// One workspace on the home page.
#[derive(Debug, Clone)]
pub struct WsRow {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The caller's role (or `anonymous read`).
    pub role: String,
}

/// `GET /`: the caller's workspaces.
#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    /// Frame.
    pub chrome: Chrome,
    /// The workspaces.
    pub rows: Vec<WsRow>,
}

/// One experiment in a list.
#[derive(Debug, Clone)]
pub struct ExpRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Creation time, formatted.
    pub created: String,
    /// Last update, formatted.
    pub updated: String,
}

/// `GET /ui/ws/{ws}`: the experiments.
#[derive(Template)]
#[template(path = "experiments.html")]
pub struct ExperimentsPage {
    /// Frame.
    pub chrome: Chrome,
    /// The experiments, newest first.
    pub rows: Vec<ExpRow>,
}

/// A column of the runs table.
#[derive(Debug, Clone)]
pub struct Col {
    /// `params.lr`, `metrics.acc`, `tags.x`, or an attribute (`attributes.start_time`).
    pub key: String,
    /// The header text.
    pub label: String,
    /// The URL that sorts by it (toggling the direction).
    pub sort_url: String,
    /// `asc`, `desc` or empty.
    pub sorted: &'static str,
}

/// One run in the runs table.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// State.
    pub status: String,
    /// Start time, formatted.
    pub start: String,
    /// Duration, formatted.
    pub duration: String,
    /// The chosen columns' values.
    pub cells: Vec<String>,
}

/// A key the column chooser offers.
#[derive(Debug, Clone)]
pub struct Choice {
    /// `params.lr` etc.
    pub key: String,
    /// Whether it is shown now.
    pub on: bool,
}

/// The runs table (a page part: htmx swaps it on sort, filter and paging).
#[derive(Template)]
#[template(path = "runs_table.html")]
pub struct RunsTable {
    /// Workspace.
    pub ws: String,
    /// Experiment id.
    pub exp_id: i64,
    /// The filter as typed.
    pub filter: String,
    /// The filter's error and the caret line under it (`   ^`), when it does not parse.
    pub error: Option<(String, String)>,
    /// Sortable attribute columns (name, start, duration), then the chosen ones.
    pub fixed: Vec<Col>,
    /// The chosen param/metric/tag columns.
    pub cols: Vec<Col>,
    /// The page of runs.
    pub rows: Vec<RunRow>,
    /// The next page, if any.
    pub next_url: Option<String>,
    /// The first page, when this is not it.
    pub first_url: Option<String>,
    /// Number of rows on this page.
    pub shown: usize,
}

/// `GET /ui/ws/{ws}/experiments/{id}`: the runs of an experiment.
#[derive(Template)]
#[template(path = "runs.html")]
pub struct RunsPage {
    /// Frame.
    pub chrome: Chrome,
    /// Experiment id.
    pub exp_id: i64,
    /// Experiment name.
    pub exp_name: String,
    /// Column chooser: params, metrics, tags.
    pub choices: Vec<(String, Vec<Choice>)>,
    /// The table.
    pub table: RunsTable,
}

/// A key and a value.
#[derive(Debug, Clone)]
pub struct Kv {
    /// Key.
    pub k: String,
    /// Value.
    pub v: String,
}

/// A run named in a list (parent, children, compared runs).
#[derive(Debug, Clone)]
pub struct RunRef {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// State.
    pub status: String,
}

/// `GET /ui/ws/{ws}/runs/{id}`.
#[derive(Template)]
#[template(path = "run.html")]
pub struct RunPage {
    /// Frame.
    pub chrome: Chrome,
    /// The run.
    pub run: RunRef,
    /// Experiment id and name.
    pub exp: (i64, String),
    /// User, start, end, duration.
    pub facts: Vec<Kv>,
    /// Parameters.
    pub params: Vec<Kv>,
    /// Latest metric values (value and step).
    pub metrics: Vec<Kv>,
    /// Tags (without `mlflow.` internals shown elsewhere).
    pub tags: Vec<Kv>,
    /// The parent run.
    pub parent: Option<RunRef>,
    /// Child runs.
    pub children: Vec<RunRef>,
    /// Metric keys (one chart each).
    pub metric_keys: Vec<String>,
    /// Whether the run is still running (charts and log poll).
    pub live: bool,
    /// The job that runs it, whose log the page tails.
    pub job: Option<String>,
    /// Where the code came from (source, commit, repository, entry point, command).
    pub code: Vec<Kv>,
    /// The code snapshot's files (`code/` artifacts), opened in the artifacts browser.
    pub code_files: Vec<ArtRow>,
    /// Whether the snapshot has more files than listed.
    pub code_more: bool,
}

/// One artifact entry.
#[derive(Debug, Clone)]
pub struct ArtRow {
    /// Path from the run's artifact root.
    pub path: String,
    /// Last path segment.
    pub name: String,
    /// A directory.
    pub is_dir: bool,
    /// Size, formatted.
    pub size: String,
    /// The URL that lists or previews it.
    pub url: String,
}

/// An artifact directory listing or a file's preview (a page part).
#[derive(Template)]
#[template(path = "artifacts.html")]
pub struct ArtifactsPart {
    /// Workspace.
    pub ws: String,
    /// Run id.
    pub run_id: String,
    /// The directory or file shown (empty: the root).
    pub path: String,
    /// The URL of its parent directory, for "up".
    pub up_url: Option<String>,
    /// A directory's entries.
    pub entries: Vec<ArtRow>,
    /// A file's preview.
    pub preview: Option<Preview>,
    /// The download URL of the file.
    pub raw_url: String,
}

/// How a file is previewed.
#[derive(Debug, Clone)]
pub enum Preview {
    /// Text (or pretty-printed JSON), possibly cut.
    Text {
        /// The text.
        text: String,
        /// Whether it was cut.
        cut: bool,
    },
    /// CSV as a table: header and rows, possibly cut.
    Table {
        /// Header.
        head: Vec<String>,
        /// Rows.
        rows: Vec<Vec<String>>,
        /// Whether it was cut.
        cut: bool,
    },
    /// An image, shown from `raw_url`.
    Image,
    /// Anything else: only a download.
    Binary {
        /// Size, formatted.
        size: String,
    },
}

/// One row of the compare diff table.
#[derive(Debug, Clone)]
pub struct DiffRow {
    /// `params.lr`, `metrics.acc`, `tags.x`.
    pub key: String,
    /// Value per run (empty when absent).
    pub values: Vec<String>,
    /// Whether the runs differ on it.
    pub differs: bool,
}

/// `GET /ui/ws/{ws}/compare?runs=..`.
#[derive(Template)]
#[template(path = "compare.html")]
pub struct ComparePage {
    /// Frame.
    pub chrome: Chrome,
    /// The runs.
    pub runs: Vec<RunRef>,
    /// The diff table.
    pub rows: Vec<DiffRow>,
    /// Metric keys any run has (one overlaid chart each).
    pub metric_keys: Vec<String>,
    /// Runs' params and latest metrics as JSON, for parallel coordinates and the scatter.
    pub data_json: String,
}

/// One registered model in the list.
#[derive(Debug, Clone)]
pub struct ModelRow {
    /// Name.
    pub name: String,
    /// Latest version.
    pub latest: String,
    /// `alias → version` labels.
    pub aliases: Vec<Kv>,
    /// Description.
    pub description: String,
    /// Last update, formatted.
    pub updated: String,
}

/// `GET /ui/ws/{ws}/models`.
#[derive(Template)]
#[template(path = "models.html")]
pub struct ModelsPage {
    /// Frame.
    pub chrome: Chrome,
    /// The models.
    pub rows: Vec<ModelRow>,
}

/// One model version.
#[derive(Debug, Clone)]
pub struct VersionRow {
    /// Version number.
    pub version: i64,
    /// The run that produced it, if any.
    pub run_id: Option<String>,
    /// Its source URI.
    pub source: String,
    /// Aliases pointing at it.
    pub aliases: Vec<String>,
    /// Tags.
    pub tags: Vec<Kv>,
    /// Creation time, formatted.
    pub created: String,
    /// Dataset versions of its run's inputs (`name:version`), for lineage.
    pub datasets: Vec<String>,
    /// Endpoints and deployments serving it (`endpoint/deployment`).
    pub deployments: Vec<String>,
}

/// `GET /ui/ws/{ws}/models/{name}` (and the part re-rendered after an alias moves).
#[derive(Template)]
#[template(path = "model.html")]
pub struct ModelPage {
    /// Frame.
    pub chrome: Chrome,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Versions, newest first.
    pub versions: Vec<VersionRow>,
    /// `alias → version`.
    pub aliases: Vec<Kv>,
    /// A message after a change (or its error).
    pub flash: Option<(bool, String)>,
}

/// One endpoint in the list.
#[derive(Debug, Clone)]
pub struct EndpointRow {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Scoring URL path.
    pub uri: String,
    /// `deployment: model vN (traffic %)` lines.
    pub deployments: Vec<String>,
}

/// `GET /ui/ws/{ws}/endpoints`.
#[derive(Template)]
#[template(path = "endpoints.html")]
pub struct EndpointsPage {
    /// Frame.
    pub chrome: Chrome,
    /// The endpoints.
    pub rows: Vec<EndpointRow>,
}

/// One deployment of an endpoint.
#[derive(Debug, Clone)]
pub struct DeploymentRow {
    /// Name.
    pub name: String,
    /// The model actually served (`name vN`, or the run's model path).
    pub model: String,
    /// Link to the model page, when registered.
    pub model_link: Option<String>,
    /// Scorer `name@version`.
    pub scorer: String,
    /// Traffic percent.
    pub traffic: u32,
    /// Mirror percent.
    pub mirror: u32,
    /// `warm` / `cold` and instances.
    pub state: String,
}

/// `GET /ui/ws/{ws}/endpoints/{name}`.
#[derive(Template)]
#[template(path = "endpoint.html")]
pub struct EndpointPage {
    /// Frame.
    pub chrome: Chrome,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Scoring URL path.
    pub uri: String,
    /// `key` or `none`.
    pub auth_mode: String,
    /// Deployments.
    pub deployments: Vec<DeploymentRow>,
    /// A message after a change (or its error).
    pub flash: Option<(bool, String)>,
    /// A new key, shown once after regeneration.
    pub new_key: Option<String>,
}

/// Live counters of one deployment (a page part the endpoint page polls).
#[derive(Debug, Clone)]
pub struct LiveRow {
    /// Deployment (`(none)` for requests that reached none).
    pub name: String,
    /// Requests per second over the last poll interval.
    pub rps: String,
    /// Requests in all.
    pub requests: u64,
    /// Errors in all.
    pub errors: u64,
    /// Median latency bound.
    pub p50: String,
    /// 99th percentile latency bound.
    pub p99: String,
    /// In flight now.
    pub in_flight: i64,
}

/// The endpoint's live counters (a page part).
#[derive(Template)]
#[template(path = "endpoint_live.html")]
pub struct EndpointLive {
    /// Workspace.
    pub ws: String,
    /// Endpoint.
    pub name: String,
    /// Per deployment.
    pub rows: Vec<LiveRow>,
    /// Counters as of this poll (`requests` per deployment), echoed back next time for rates.
    pub state: String,
}

/// One job in the queue.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Id.
    pub id: String,
    /// Kind (train, command, sweep, …).
    pub kind: String,
    /// State.
    pub state: String,
    /// Its run, if any.
    pub run_id: Option<String>,
    /// Submission time, formatted.
    pub created: String,
}

/// `GET /ui/ws/{ws}/jobs`.
#[derive(Template)]
#[template(path = "jobs.html")]
pub struct JobsPage {
    /// Frame.
    pub chrome: Chrome,
    /// Newest first.
    pub rows: Vec<JobRow>,
}

/// `GET /ui/ws/{ws}/jobs/{id}`.
#[derive(Template)]
#[template(path = "job.html")]
pub struct JobPage {
    /// Frame.
    pub chrome: Chrome,
    /// The job.
    pub job: JobRow,
    /// Whether it may still change (log polls, cancel shows).
    pub live: bool,
    /// Its spec as pretty JSON.
    pub spec: String,
    /// Error, when it failed.
    pub error: Option<String>,
    /// A sweep's or AutoML job's leaderboard.
    pub board: Option<Board>,
    /// A message after a change (or its error).
    pub flash: Option<(bool, String)>,
}

/// One trial of a sweep.
#[derive(Debug, Clone)]
pub struct TrialRow {
    /// Trial number.
    pub id: u64,
    /// State.
    pub state: String,
    /// The primary metric's value, formatted.
    pub value: String,
    /// `name=value` of its parameters.
    pub params: String,
    /// Its run.
    pub run_id: Option<String>,
}

/// A sweep's leaderboard (a page part, polled while the sweep runs).
#[derive(Template)]
#[template(path = "trials.html")]
pub struct Board {
    /// Workspace.
    pub ws: String,
    /// The job.
    pub job: String,
    /// The primary metric and goal (`val_accuracy`, `maximize`).
    pub metric: String,
    /// `maximize` or `minimize`.
    pub goal: String,
    /// Counts by state, formatted.
    pub counts: String,
    /// Trials, best first.
    pub rows: Vec<TrialRow>,
    /// The best trial's run.
    pub best_run: Option<String>,
    /// The compare page of the trials' runs (parallel coordinates over trials).
    pub compare_url: Option<String>,
    /// The trial runs, comma-separated (their curves on one chart).
    pub runs_csv: String,
    /// Whether the part polls.
    pub live: bool,
    /// Whether the caller may register the best model.
    pub can_write: bool,
}

/// The tail of a job's log (a page part; polled while the job runs).
#[derive(Template)]
#[template(path = "log.html")]
pub struct LogPart {
    /// The last lines.
    pub text: String,
    /// The URL to poll, while live.
    pub poll: Option<String>,
}

/// One dataset in the list (its latest version).
#[derive(Debug, Clone)]
pub struct DatasetRow {
    /// Name.
    pub name: String,
    /// Latest version.
    pub latest: i64,
    /// How many versions.
    pub versions: usize,
    /// Rows of the latest version.
    pub rows: i64,
    /// Size of the latest version, formatted.
    pub size: String,
    /// When the latest version was uploaded, formatted.
    pub created: String,
}

/// `GET /ui/ws/{ws}/datasets`.
#[derive(Template)]
#[template(path = "datasets.html")]
pub struct DatasetsPage {
    /// Frame.
    pub chrome: Chrome,
    /// By name.
    pub rows: Vec<DatasetRow>,
}

/// `GET /ui/ws/{ws}/datasets/{name}?version=N`.
#[derive(Template)]
#[template(path = "dataset.html")]
pub struct DatasetPage {
    /// Frame.
    pub chrome: Chrome,
    /// Name.
    pub name: String,
    /// The version shown.
    pub version: i64,
    /// Every version: number, rows, size, uploaded.
    pub versions: Vec<(i64, i64, String, String)>,
    /// Column name and type.
    pub schema: Vec<Kv>,
    /// Preview: header and first rows.
    pub head: Vec<String>,
    /// Preview rows.
    pub preview: Vec<Vec<String>>,
    /// Jobs that used this version (public ids).
    pub jobs: Vec<String>,
    /// Download URL.
    pub download: String,
}

/// `GET /ui/ws/{ws}/settings`: secrets (names only) and roles; the audit log for Owners.
#[derive(Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    /// Frame.
    pub chrome: Chrome,
    /// Secrets: name, version, updated.
    pub secrets: Vec<(String, i64, String)>,
    /// Role assignments: user, role.
    pub roles: Vec<Kv>,
    /// A message after a change (or its error).
    pub flash: Option<(bool, String)>,
}

/// One audit record.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// When, formatted.
    pub at: String,
    /// Who.
    pub actor: String,
    /// `METHOD /route`.
    pub action: String,
    /// The path and ids.
    pub object: String,
    /// HTTP status.
    pub status: u16,
    /// `ok`, `denied`, `failed`.
    pub result: String,
}

/// `GET /ui/ws/{ws}/audit` (Owners).
#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    /// Frame.
    pub chrome: Chrome,
    /// Newest first.
    pub rows: Vec<AuditRow>,
}

/// One component version in the list.
#[derive(Debug, Clone)]
pub struct ComponentRow {
    /// Registry name.
    pub name: String,
    /// Version label.
    pub version: String,
    /// Plugin kind.
    pub kind: String,
    /// The manifest's description.
    pub description: String,
    /// Registered by the host itself.
    pub builtin: bool,
    /// Size, formatted.
    pub size: String,
    /// The first 12 hex digits of its sha256.
    pub digest: String,
    /// When it was pushed, formatted.
    pub created: String,
}

/// One datastore of a workspace.
#[derive(Debug, Clone)]
pub struct DatastoreRow {
    /// Name.
    pub name: String,
    /// Whether new artifacts go here by default.
    pub default: bool,
    /// `component@version`, or empty for the built-in local store.
    pub component: String,
    /// What the component was granted, one `key: value` line each (secrets by name).
    pub grants: Vec<Kv>,
}

/// `GET /ui/ws/{ws}/components`: components and datastores.
#[derive(Template)]
#[template(path = "components.html")]
pub struct ComponentsPage {
    /// Frame.
    pub chrome: Chrome,
    /// By name, then version.
    pub components: Vec<ComponentRow>,
    /// By name.
    pub datastores: Vec<DatastoreRow>,
}

/// `GET /ui/ws/{ws}/components/{name}/{version}`.
#[derive(Template)]
#[template(path = "component.html")]
pub struct ComponentPage {
    /// Frame.
    pub chrome: Chrome,
    /// The version shown.
    pub row: ComponentRow,
    /// Facts: SDK API version, digest, size, origin.
    pub facts: Vec<Kv>,
    /// Capabilities asked for, one per line (`dirs`, `http`, `secrets`, `config`).
    pub capabilities: Vec<Kv>,
    /// Limits asked for.
    pub limits: Vec<Kv>,
    /// The manifest, pretty JSON.
    pub manifest: String,
    /// Every version of the name (label, kind, pushed).
    pub versions: Vec<(String, String, String)>,
    /// Datastores that use this version.
    pub datastores: Vec<String>,
}

/// One API token in a list (never its value).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Public id (`tok_…`).
    pub id: String,
    /// Its user.
    pub user: String,
    /// Free text.
    pub description: String,
    /// Created, formatted.
    pub created: String,
    /// `never`, a time, or `expired …`.
    pub expires: String,
    /// `active`, `revoked …` or `expired`.
    pub state: String,
    /// Whether it can still be revoked.
    pub active: bool,
    /// `workspace (Role)` for a scoped token.
    pub scope: String,
    /// Whether this session signed in with it.
    pub current: bool,
}

/// One user (admins' page).
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Name.
    pub name: String,
    /// Server admin.
    pub admin: bool,
    /// Created, formatted.
    pub created: String,
    /// `workspace: Role` for each role.
    pub roles: String,
    /// Active tokens.
    pub tokens: usize,
}

/// `GET /ui/tokens` (your tokens) and `GET /ui/users` (admins: users and every token).
#[derive(Template)]
#[template(path = "people.html")]
pub struct PeoplePage {
    /// Frame.
    pub chrome: Chrome,
    /// Whether this is the admins' page (users, everyone's tokens).
    pub all: bool,
    /// Users (admins' page only).
    pub users: Vec<UserRow>,
    /// Tokens, newest first.
    pub tokens: Vec<TokenRow>,
    /// The signed-in user's name.
    pub me: String,
    /// A token just created: its value, shown once.
    pub created: Option<String>,
    /// A message after a change (or its error).
    pub flash: Option<(bool, String)>,
}

/// One pipeline in the list (its latest version).
#[derive(Debug, Clone)]
pub struct PipelineRow {
    /// Name.
    pub name: String,
    /// Latest version.
    pub version: i64,
    /// What it does.
    pub description: String,
    /// How many steps.
    pub steps: usize,
    /// Its inputs: name and `type = default`.
    pub inputs: Vec<Kv>,
    /// When the latest version was published, formatted.
    pub created: String,
    /// Who published it.
    pub created_by: String,
}

/// One pipeline run in a list.
#[derive(Debug, Clone)]
pub struct PipelineRunRow {
    /// The pipeline job's id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `name:version`.
    pub pipeline: String,
    /// The pipeline's name (for links).
    pub pipeline_name: String,
    /// Queued, Running, Completed, Failed or Canceled.
    pub state: String,
    /// How many steps.
    pub steps: usize,
    /// How many of them were cache hits.
    pub cached: usize,
    /// Submission time, formatted.
    pub created: String,
}

/// `GET /ui/ws/{ws}/pipelines?pipeline=..`: pipelines and their latest runs.
#[derive(Template)]
#[template(path = "pipelines.html")]
pub struct PipelinesPage {
    /// Frame.
    pub chrome: Chrome,
    /// By name.
    pub rows: Vec<PipelineRow>,
    /// The latest runs, newest first.
    pub runs: Vec<PipelineRunRow>,
    /// The pipeline the runs are filtered to.
    pub filter: Option<String>,
}

/// Where a cached step's outputs come from.
#[derive(Debug, Clone)]
pub struct ReusedRef {
    /// The pipeline run (job id) whose step produced them.
    pub job: String,
    /// That step.
    pub step: String,
    /// Its run (tracking).
    pub run: Option<String>,
    /// Whether the step waits for that identical step to finish.
    pub waiting: bool,
}

/// One step of a pipeline run.
#[derive(Debug, Clone)]
pub struct StepRow {
    /// Name.
    pub step: String,
    /// Kind.
    pub kind: String,
    /// Pending, Queued, Running, Completed, Cached, Skipped, Failed or Canceled.
    pub state: String,
    /// The steps it runs after.
    pub after: Vec<String>,
    /// Attempts started.
    pub attempt: i64,
    /// Its job (current attempt).
    pub job: Option<String>,
    /// Its run (tracking).
    pub run_id: Option<String>,
    /// Its outputs, `name = value`.
    pub outputs: Vec<Kv>,
    /// Where a cached step's outputs come from.
    pub reused: Option<ReusedRef>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// How long it ran, formatted (empty until it ends).
    pub duration: String,
}

/// `GET /ui/ws/{ws}/pipelines/runs/{id}`: a pipeline run and its steps (polled while live).
#[derive(Template)]
#[template(path = "pipeline_run.html")]
pub struct PipelineRunPage {
    /// Frame.
    pub chrome: Chrome,
    /// The run.
    pub run: PipelineRunRow,
    /// Why it failed.
    pub error: Option<String>,
    /// Its run (tracking).
    pub run_id: Option<String>,
    /// The pipeline run it reruns.
    pub rerun_of: Option<String>,
    /// The schedule that started it.
    pub schedule: Option<String>,
    /// The schedule's tick (RFC 3339).
    pub trigger_time: Option<String>,
    /// End time, formatted (empty while it runs).
    pub ended: String,
    /// The inputs it ran with.
    pub inputs: Vec<Kv>,
    /// Steps in dependency order.
    pub steps: Vec<StepRow>,
    /// Its outputs (once completed).
    pub outputs: Vec<Kv>,
    /// Whether it may still change (the page polls, cancel shows).
    pub live: bool,
    /// A message after a change (or its error).
    pub flash: Option<(bool, String)>,
}

/// One tick of a schedule.
#[derive(Debug, Clone)]
pub struct TickRow {
    /// The scheduled time (RFC 3339).
    pub tick: String,
    /// Pending, Submitted, Skipped, Queued or Failed.
    pub outcome: String,
    /// The pipeline run it started.
    pub job: Option<String>,
    /// Why it was skipped or failed.
    pub detail: String,
}

/// One schedule.
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    /// Name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// `name:version` or `name@latest`.
    pub pipeline: String,
    /// The pipeline's name (for links).
    pub pipeline_name: String,
    /// The trigger in words, with its time zone.
    pub describe: String,
    /// Whether it fires.
    pub enabled: bool,
    /// `latest`, `none` or `all`.
    pub catchup: String,
    /// `skip`, `queue` or `allow`.
    pub overlap: String,
    /// The next ticks (RFC 3339).
    pub next: Vec<String>,
    /// The latest ticks, newest first.
    pub ticks: Vec<TickRow>,
}

/// `GET /ui/ws/{ws}/schedules`.
#[derive(Template)]
#[template(path = "schedules.html")]
pub struct SchedulesPage {
    /// Frame.
    pub chrome: Chrome,
    /// By name.
    pub rows: Vec<ScheduleRow>,
}
