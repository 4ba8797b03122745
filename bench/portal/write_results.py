"""Writes bench/portal/RESULTS.md: the run's context, the measured tables (from bench.py)
and what each "done" condition means."""

import argparse
import json

NOTES_MARK = "<!-- notes: kept by write_results.py -->"

CONDITIONS = """\
## What "done" means (both UIs, same Chromium, 1280×800, one browser context per UI)

Every condition is evaluated inside the page on each animation frame (`requestAnimationFrame`,
i.e. at the frame that paints it); the time is `performance.now()` at that frame. Page loads are
timed from navigation start (a fresh tab each time, `page.goto`; the HTTP cache is warm: one
unrecorded warm-up load of each page precedes the repetitions). Actions are timed from the input
event itself: a capture-phase listener on `window` records the `mousedown` of the click, or the
`keydown` of Enter, before the app sees it; the page is loaded and network-idle before the action.

| Measurement | Atrium | MLflow 3.17.2 |
|---|---|---|
| Runs page interactive | `/ui/ws/default/experiments/<id>`: `DOMContentLoaded` has fired (htmx, uPlot and app.js ran) **and** `#runs tbody` holds the 100 rows of the first page **and** its first row is the newest run `run-09999` | `/#/experiments/<id>/runs?workflowType=machine_learning`: the ag-grid's row 0 shows `run-09999` in *Run Name* **and** a value in the `m0` column **and** ≥ 10 rows are rendered (ag-grid virtualises: it renders the rows in view of the 100 it loaded) |
| Sort by a metric | click on the `metrics.m0` column header (htmx swaps `#runs-table`) → the header shows `desc` **and** the first row is the run with the highest m0 (checked against the seeded data) | click on the `m0` column header → the grid's row 0 is that same run |
| Filter | `metrics.m0 > 0.5` typed into `#filter` (not timed), then Enter → the first row is the newest run with m0 > 0.5 (checked against the seeded data) | the same text in the search box (`data-testid=search-box`), then Enter → the grid's row 0 is that run |
| 1M-point chart | the run page `/ui/ws/default/runs/<big>` → the `loss` chart's uPlot canvas exists and its data is set (`figure.chart[data-keys=loss][data-points]`; uPlot draws in the same task). The server reduces all 1,000,000 points to min/max per pixel column (`/series?px=<chart width>`) | the run page's *Model metrics* tab `/#/experiments/<e>/runs/<big>/model-metrics` → plotly's line path (`.js-plotly-plot path.js-line`) is drawn. **MLflow samples**: this chart asks `get-history-bulk-interval?max_results=320` and draws 320 of the 1,000,000 points. Its full metric page (`/#/metric?...`) also draws that 320-point sample first and then pages the whole history in 40 requests of 25,000 points (~90 s here) only for its latest/min/max table; it never plots all points |
| Compare 50 runs | `/ui/ws/default/compare?runs=<50 ids>` → the diff table has its 50 run columns **and** the parallel-coordinates canvas drew 50 lines **and** the scatter plot is drawn **and** every metric chart (partly) inside the viewport is drawn (the charts are fetched lazily when they scroll into view; at 1280×800 in these runs none was: the diff table fills the first screen, see `info.charts_in_view` in `results.json`) | `/#/compare-runs?runs=[<50 ids>]&experiments=["<id>"]` → plotly's parallel-coordinates plot has its axes drawn **and** a table shows links to all 50 runs (the *Run details* table; parameters and metrics tables render with it) |

MLflow is driven as a user would see it on a first visit, with two things preset in
`localStorage` before every load: the *Model training* view (URL `workflowType=machine_learning`;
MLflow 3 opens GenAI views by default), the assistant side panel closed, and the experiment page's
saved view written back to its default with the same ten columns Atrium shows by default
(metrics m0–m5, params p00–p03), so no repetition inherits the previous one's sort or filter.
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--load-start", default="")
    ap.add_argument("--load-end", default="")
    ap.add_argument("--wall", default="")
    ap.add_argument("--command", default="bench/portal/run.sh")
    ap.add_argument("--mlflow-version", default="")
    ap.add_argument("--atrium-version", default="")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    d = json.load(open(a.json))
    meta = d["meta"]
    table = open(a.table).read()
    L = ["# Portal benchmark: Atrium's portal vs MLflow's UI", ""]
    L.append(f"- Date: {meta['date']}")
    L.append(f"- Command: `{a.command.strip()}`")
    L.append(f"- Data: {meta['runs']:,} runs × 20 params × 10 metrics (3 steps each) in one experiment; "
             "one more run (own experiment) with metric `loss` of 1,000,000 steps. The same values in both stores.")
    L.append(f"- Atrium: `{a.atrium_version.strip()}` (target/release/atrium, SQLite); "
             f"MLflow: `{a.mlflow_version.strip()}` (`mlflow server`, SQLite backend, its default uvicorn workers)")
    L.append(f"- Browser: Chromium {meta.get('browser', '?')} headless (Debian package, `--disable-gpu`), Playwright 1.65.2, "
             f"{meta['reps']} repetitions per measurement after one warm-up; per-measurement timeout {meta['timeout_ms'] / 1000:.0f} s")
    L.append(f"- Machine: {meta['cpus']} CPUs ({meta['platform']}); it was shared with cargo builds, so load is recorded. "
             f"Load average (1/5/15 min) at start: {a.load_start}; at end: {a.load_end}")
    seeds = []
    if "seed_atrium_s" in meta:
        seeds.append(f"Atrium {meta['seed_atrium_s']:.1f} s through its API ({meta['seed_atrium_runs_s']:.1f} s for the "
                     "10,000 runs via `runs:bulk` in 10 calls of 1,000; the rest: 100 `log` calls of 10,000 points)")
    if "seed_mlflow_s" in meta:
        seeds.append(f"MLflow {meta['seed_mlflow_s']:.1f} s (direct SQLite inserts; its REST API would take far longer)")
    L.append("- Seeding: " + "; ".join(seeds))
    L.append(f"- Whole run (servers, seeding, measurements): {a.wall} s")
    L.append("")
    L.append("## Results (ms; lower is better)")
    L.append("")
    L.append(table)
    L.append("")
    # per-sample detail
    L.append("Samples (ms):")
    L.append("")
    for ui, res in d["results"].items():
        for k, v in res.items():
            extra = ""
            infos = [s.get("info") for s in v.get("raw", []) if s.get("info")]
            if infos:
                extra = f" — info: {json.dumps(infos[-1])}"
            L.append(f"- {ui} {k}: {v['samples']}{' (+%d timed out)' % v['timeouts'] if v['timeouts'] else ''}{extra}")
    L.append("")
    L.append(CONDITIONS)
    # hand-written notes below the marker survive a rerun
    notes = ""
    try:
        old = open(a.out).read()
        if NOTES_MARK in old:
            notes = old[old.index(NOTES_MARK):]
    except FileNotFoundError:
        pass
    with open(a.out, "w") as f:
        f.write("\n".join(L) + "\n" + (("\n" + notes) if notes else ""))


if __name__ == "__main__":
    main()
