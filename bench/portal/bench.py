"""Portal benchmark: Atrium's portal against MLflow's own UI (pinned `mlflow server`), the same
data seeded in both, measured in one headless Chromium (Playwright, Debian's /usr/bin/chromium)
at 1280x800. Started by bench/portal/run.sh, which starts and stops the servers.

Every "done" condition is checked in the page on each animation frame (requestAnimationFrame, so
the time is the frame that would paint it) and timed with performance.now(): from navigation
start for page loads, from the user's input event (mousedown / Enter keydown, caught in the
capture phase before the app sees it) for actions. See RESULTS.md for the conditions."""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from playwright.sync_api import sync_playwright

import data

VIEWPORT = {"width": 1280, "height": 800}
FILTER = "metrics.m0 > 0.5"
N_COMPARE = 50
BARS = {"runs": 300, "sort": 150, "filter": 150, "chart": 500, "compare": 500}

# ------------------------------------------------------------------ in-page probes

# Installed before any page script: sets window.__done = performance.now() on the first animation
# frame where COND() is true, and window.__dcl at DOMContentLoaded (all deferred scripts ran).
LOAD_PROBE = """(() => {
  if (window.top !== window) return;
  addEventListener('DOMContentLoaded', () => { window.__dcl = performance.now(); }, true);
  %(prelude)s
  const cond = %(cond)s;
  const tick = () => {
    let ok = false;
    try { ok = !!cond(); } catch (e) {}
    if (ok) window.__done = performance.now(); else requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();"""

# Armed on a loaded page: the first mousedown, or keydown of Enter, is t0; then COND is polled
# on each frame and its first true frame is t1.
ACTION_PROBE = """(() => {
  window.__t0 = undefined; window.__t1 = undefined;
  const cond = %(cond)s;
  const tick = () => {
    let ok = false;
    try { ok = !!cond(); } catch (e) {}
    if (ok) window.__t1 = performance.now(); else requestAnimationFrame(tick);
  };
  const start = (e) => {
    if (window.__t0 !== undefined) return;
    if (e.type === 'keydown' && e.key !== 'Enter') return;
    window.__t0 = performance.now();
    removeEventListener('mousedown', start, true);
    removeEventListener('keydown', start, true);
    requestAnimationFrame(tick);
  };
  addEventListener('mousedown', start, true);
  addEventListener('keydown', start, true);
})()"""

# The resource timings of requests whose URL matches a pattern (to split server from client).
RESOURCES = """(pat) => performance.getEntriesByType('resource').filter(e => new RegExp(pat).test(e.name))
  .map(e => ({name: e.name, start: e.startTime, ttfb: e.responseStart, end: e.responseEnd, size: e.encodedBodySize}))"""
NAV = """() => { const n = performance.getEntriesByType('navigation')[0];
  return {ttfb: n.responseStart, end: n.responseEnd, dcl: window.__dcl || null}; }"""


def js_str(s):
    return json.dumps(s)


class Atrium:
    name = "Atrium"

    def __init__(self, url, token, seed):
        self.url, self.token, self.seed = url, token, seed
        ids = [seed["ids"][data.run_name(i)] for i in range(N_COMPARE)]
        self.compare_ids = ids

    def context(self, browser):
        ctx = browser.new_context(viewport=VIEWPORT)
        p = ctx.new_page()
        p.goto(f"{self.url}/ui/login")
        p.fill("input[name=token]", self.token)
        p.click("button[type=submit]")
        p.wait_for_load_state("networkidle")
        p.close()
        return ctx

    prelude = ""

    def runs_url(self):
        return f"{self.url}/ui/ws/default/experiments/{self.seed['exp']}"

    @staticmethod
    def first_row_is(name, n=None):
        count = f"rows.length === {n} && " if n else ""
        return (f"() => {{ const rows = document.querySelectorAll('#runs tbody tr'); "
                f"return {count}rows.length > 0 && rows[0].querySelector('td:nth-child(2) a').textContent === {js_str(name)}; }}")

    def runs_cond(self, n_runs):
        inner = self.first_row_is(data.run_name(n_runs - 1), 100)
        return f"() => window.__dcl && ({inner})()"

    runs_data = None  # the page is the HTML document
    action_data = r"/experiments/"  # htmx's part request

    def sort(self, page):
        page.click("#runs thead th a:text-is('metrics.m0')")

    def sort_cond(self, n_runs):
        inner = self.first_row_is(data.expected_first_by_m0_desc(n_runs))
        return f"() => document.querySelector('#runs th.sortable.desc') && ({inner})()"

    def filter_prepare(self, page):
        page.fill("#filter", FILTER)

    def filter(self, page):
        page.press("#filter", "Enter")

    def filter_cond(self, n_runs):
        return self.first_row_is(expected_filter_first(n_runs))

    def chart_url(self):
        return f"{self.url}/ui/ws/default/runs/{self.seed['big']}"

    chart_cond = ("() => { const f = document.querySelector('figure.chart[data-keys=\"loss\"]'); "
                  "return f && f.dataset.points && f.querySelector('canvas'); }")
    chart_data = r"/series\?"
    chart_info = ("() => { const f = document.querySelector('figure.chart[data-keys=\"loss\"]'); "
                  "return {points: f.dataset.points, total: f.dataset.total}; }")

    def compare_url(self):
        return f"{self.url}/ui/ws/default/compare?runs={','.join(self.compare_ids)}"

    compare_cond = f"""() => {{
      if (document.querySelectorAll('#diff thead th').length !== {N_COMPARE + 1}) return false;
      const pc = document.querySelector('#parallel');
      if (!pc || pc.dataset.lines !== '{N_COMPARE}') return false;
      const sc = document.querySelector('#scatter');
      if (!sc || !sc.dataset.points) return false;
      // every metric chart that is (partly) in the viewport is drawn
      return [...document.querySelectorAll('figure.chart[data-keys]')].every(f => {{
        if (f.hidden || !f.dataset.keys) return true;
        const r = f.getBoundingClientRect();
        if (r.bottom <= 0 || r.top >= innerHeight) return true;
        return f.dataset.points || f.dataset.error;
      }});
    }}"""
    compare_data = r"/series\?"
    compare_info = ("() => ({charts_in_view: [...document.querySelectorAll('figure.chart[data-keys]')].filter(f => "
                    "{ const r = f.getBoundingClientRect(); return !f.hidden && f.dataset.keys && r.bottom > 0 && r.top < innerHeight; }).length})")
    compare_full_cond = ("() => [...document.querySelectorAll('figure.chart[data-keys]')].filter(f => !f.hidden && f.dataset.keys)"
                         ".every(f => f.dataset.points || f.dataset.error) && document.querySelector('#parallel').dataset.lines")


def expected_filter_first(n_runs):
    """The newest run (highest index: start times grow with it) whose latest m0 > 0.5."""
    for i in range(n_runs - 1, -1, -1):
        if data.latest(i, 0) > 0.5:
            return data.run_name(i)


class Mlflow:
    name = "MLflow"

    def __init__(self, url, seed):
        self.url, self.seed = url, seed
        self.compare_ids = [seed["ids"][data.run_name(i)] for i in range(N_COMPARE)]
        exp = seed["exp"]
        # the experiment page's saved view (MLflow keeps it in localStorage): the default, with
        # the same ten columns Atrium shows by default (metrics m0..m5, params p00..p03). Written
        # before every load, so a sort or filter of a previous repetition is not restored.
        state = {
            "searchFilter": "", "orderByKey": "attributes.start_time", "orderByAsc": False,
            "startTime": "ALL", "lifecycleFilter": "Active", "datasetsFilter": [],
            "modelVersionFilter": "All Runs",
            "selectedColumns": [f"metrics.`m{k}`" for k in range(6)] + [f"params.`p{j:02d}`" for j in range(4)],
            "columnOrder": [], "columnWidths": {}, "runsExpanded": {}, "runsPinned": [],
            "runsHidden": [], "runsVisibilityMap": {}, "runsHiddenMode": "FIRST_10_RUNS",
            "viewMaximized": False, "runListHidden": False, "isAccordionReordered": False,
            "useGroupedValuesInCharts": True, "hideEmptyCharts": True, "groupBy": None,
            "groupsExpanded": {}, "autoRefreshEnabled": True,
            "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
        }
        key = f'MLflowLocalStorage-1.1-ExperimentPage-["{exp}"]-ReactComponentState'
        # the assistant side panel closed (as after a user closed it once)
        self.prelude = (f"try {{ localStorage.setItem({js_str(key)}, {js_str(json.dumps(state))}); "
                        "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false'); "
                        "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true'); } catch (e) {}")

    def context(self, browser):
        return browser.new_context(viewport=VIEWPORT)

    def runs_url(self):
        return f"{self.url}/#/experiments/{self.seed['exp']}/runs?workflowType=machine_learning"

    @staticmethod
    def first_row_is(name, min_rows=None):
        rows = f"document.querySelectorAll('.ag-pinned-left-cols-container .ag-row').length >= {min_rows} && " if min_rows else ""
        return ("() => { const c = document.querySelector('.ag-row[row-index=\"0\"] [col-id=\"attributes.`Run Name`\"]'); "
                "const m = document.querySelector('.ag-row[row-index=\"0\"] [col-id=\"metrics.`m0`\"]'); "
                f"return {rows}c && m && m.textContent.trim() !== '' && c.textContent.includes({js_str(name)}); }}")

    def runs_cond(self, n_runs):
        return self.first_row_is(data.run_name(n_runs - 1), 10)

    runs_data = r"runs/search"
    action_data = r"runs/search"

    def sort(self, page):
        page.click(".ag-header-cell[col-id='metrics.`m0`']")

    def sort_cond(self, n_runs):
        return self.first_row_is(data.expected_first_by_m0_desc(n_runs))

    def filter_prepare(self, page):
        page.fill("input[data-testid=search-box]", FILTER)

    def filter(self, page):
        page.press("input[data-testid=search-box]", "Enter")

    def filter_cond(self, n_runs):
        return self.first_row_is(expected_filter_first(n_runs))

    def chart_url(self):
        return (f"{self.url}/#/experiments/{self.seed['big_exp']}/runs/{self.seed['big']}"
                "/model-metrics?workflowType=machine_learning")

    # the run page's "Model metrics" chart of `loss`: plotly's line path drawn
    chart_cond = ("() => [...document.querySelectorAll('.js-plotly-plot path.js-line')]"
                  ".some(p => (p.getAttribute('d') || '').length > 200)")
    chart_data = r"get-history"
    chart_info = ("() => ({paths: [...document.querySelectorAll('.js-plotly-plot path.js-line')].map(p => "
                  "(p.getAttribute('d').match(/L/g) || []).length + 1)})")

    def compare_url(self):
        return (f"{self.url}/#/compare-runs?runs={urllib.parse.quote(json.dumps(self.compare_ids))}"
                f"&experiments={urllib.parse.quote(json.dumps([self.seed['exp']]))}")

    compare_cond = None  # set in main once its DOM is known (see COMPARE_COND_MLFLOW)
    compare_data = r"runs/search|runs/get|artifacts/list"
    compare_info = "() => ({})"
    compare_full_cond = None


# MLflow's compare page: the plotly parallel-coordinates plot drawn (its lines) and the
# parameters/metrics table holding all 50 runs' columns.
Mlflow.compare_cond = f"""() => {{
  if (document.querySelectorAll('.js-plotly-plot .parcoords .axis').length < 2) return false;
  const links = [...document.querySelectorAll('table')].map(t => t.querySelectorAll('a[href*="/runs/"]').length);
  return Math.max(0, ...links) >= {N_COMPARE};
}}"""


# ------------------------------------------------------------------ measuring

def load_once(ctx, ui, url, cond, timeout_ms, data_pat=None, info=None, shot=None):
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)[:200]))
    try:
        page.add_init_script(LOAD_PROBE % {"cond": cond, "prelude": ui.prelude})
        page.goto(url, wait_until="commit", timeout=timeout_ms)
        try:
            page.wait_for_function("() => window.__done !== undefined", timeout=timeout_ms, polling=50)
        except Exception:
            if shot:
                page.screenshot(path=shot.replace(".png", "-timeout.png"))
            return {"ms": None, "timeout": timeout_ms, "errors": errors}
        r = {"ms": page.evaluate("window.__done"), "nav": page.evaluate(NAV), "errors": errors}
        # the data the page waited for: the HTML document itself, and the requests matching
        # data_pat that had answered by the done frame
        ends = [r["nav"]["end"]]
        if data_pat:
            res = page.evaluate(RESOURCES, data_pat)
            r["data"] = res
            ends += [x["end"] for x in res if x["end"] <= r["ms"]]
        r["data_end"] = max(ends)
        r["dcl"] = r["nav"]["dcl"]
        # every subresource: a transfer size of 0 means it came from the HTTP cache
        r["resources"] = page.evaluate("""() => performance.getEntriesByType('resource').map(e => ({
            name: e.name.slice(0, 160), start: Math.round(e.startTime), end: Math.round(e.responseEnd),
            transfer: e.transferSize, body: e.encodedBodySize}))""")
        if info:
            r["info"] = page.evaluate(info)
        if shot:
            page.screenshot(path=shot)
        return r
    finally:
        page.close()


def action_once(ctx, ui, url, load_cond, prepare, act, cond, timeout_ms, data_pat=None, shot=None):
    page = ctx.new_page()
    try:
        page.add_init_script(LOAD_PROBE % {"cond": load_cond, "prelude": ui.prelude})
        page.goto(url, wait_until="commit", timeout=timeout_ms)
        page.wait_for_function("() => window.__done !== undefined", timeout=timeout_ms, polling=50)
        # let the loaded page settle (late requests, layout) before acting
        try:
            page.wait_for_load_state("networkidle", timeout=10_000)
        except Exception:
            pass
        page.wait_for_timeout(300)
        if prepare:
            prepare(page)
        page.evaluate(ACTION_PROBE % {"cond": cond})
        act(page)
        try:
            page.wait_for_function("() => window.__t1 !== undefined", timeout=timeout_ms, polling=50)
        except Exception:
            if shot:
                page.screenshot(path=shot.replace(".png", "-timeout.png"))
            return {"ms": None, "timeout": timeout_ms}
        t0, t1 = page.evaluate("[window.__t0, window.__t1]")
        r = {"ms": t1 - t0, "t0": t0}
        if data_pat:
            res = [x for x in page.evaluate(RESOURCES, data_pat) if x["start"] >= t0 - 1]
            r["data"] = res
            ends = [x["end"] - t0 for x in res if x["end"] <= t1]
            r["data_end"] = max(ends) if ends else None
        if shot:
            page.screenshot(path=shot)
        return r
    finally:
        page.close()


def summary(samples):
    ok = [s["ms"] for s in samples if s.get("ms") is not None]
    timeouts = sum(1 for s in samples if s.get("ms") is None)
    data_ends = [s["data_end"] for s in samples if s.get("data_end") is not None]
    dcls = [s["dcl"] for s in samples if s.get("dcl") is not None]
    return {
        "median": statistics.median(ok) if ok else None,
        "min": min(ok) if ok else None,
        "n": len(ok), "timeouts": timeouts,
        "data_end_median": statistics.median(data_ends) if data_ends else None,
        "dcl_median": statistics.median(dcls) if dcls else None,
        "samples": [round(x, 1) for x in ok],
    }


def run_ui(browser, ui, n_runs, reps, shots, timeout_ms, log, steps=()):
    ctx = ui.context(browser)
    out = {}
    n = ui.name.lower()

    def rec(key, fn):
        if steps and key not in steps:
            return
        fn(None)  # warm-up (HTTP cache, server caches): not counted
        samples = []
        for i in range(reps):
            shot = os.path.join(shots, f"{n}-{key}.png") if i == reps - 1 else None
            samples.append(fn(shot))
            log(f"  {ui.name} {key} #{i + 1}: {samples[-1].get('ms')}")
        out[key] = summary(samples)
        out[key]["raw"] = samples

    rec("runs", lambda shot: load_once(ctx, ui, ui.runs_url(), ui.runs_cond(n_runs), timeout_ms,
                                       ui.runs_data, None, shot))
    rec("sort", lambda shot: action_once(ctx, ui, ui.runs_url(), ui.runs_cond(n_runs), None, ui.sort,
                                         ui.sort_cond(n_runs), timeout_ms, ui.action_data, shot))
    rec("filter", lambda shot: action_once(ctx, ui, ui.runs_url(), ui.runs_cond(n_runs), ui.filter_prepare,
                                           ui.filter, ui.filter_cond(n_runs), timeout_ms, ui.action_data, shot))
    rec("chart", lambda shot: load_once(ctx, ui, ui.chart_url(), ui.chart_cond, timeout_ms, ui.chart_data,
                                        ui.chart_info, shot))
    rec("compare", lambda shot: load_once(ctx, ui, ui.compare_url(), ui.compare_cond, timeout_ms,
                                          ui.compare_data, ui.compare_info, shot))
    ctx.close()
    return out


# ------------------------------------------------------------------ plain HTTP (server time)

def timed(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        size = fn()
        ts.append((time.perf_counter() - t) * 1000)
    return {"median": statistics.median(ts), "min": min(ts), "bytes": size}


def get(url, headers=None, body=None, method=None):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    with urllib.request.urlopen(req, timeout=600) as r:
        return len(r.read())


def server_times(atrium, mlflow, cookie, n_runs, reps, chart_px):
    out = {}
    if atrium and cookie:
        h = {"Cookie": cookie}
        hx = dict(h, **{"HX-Request": "true"})
        base = atrium.runs_url()
        cols = "&".join("col=" + urllib.parse.quote(c) for c in
                        [f"metrics.m{k}" for k in range(6)] + [f"params.p{j:02d}" for j in range(4)])
        out["atrium runs page (full HTML)"] = timed(lambda: get(base, h), reps)
        tok = {"Authorization": f"Bearer {atrium.token}", "Content-Type": "application/json"}
        exp = atrium.seed["exp"]

        def asearch(order, flt=""):
            body = {"experiment_ids": [exp], "run_view_type": "ACTIVE_ONLY", "max_results": 100, "order_by": [order]}
            if flt:
                body["filter"] = flt
            return lambda: get(f"{atrium.url}/api/2.0/mlflow/runs/search", tok, json.dumps(body).encode(), "POST")

        out["atrium REST runs/search (100, start_time DESC)"] = timed(asearch("attributes.start_time DESC"), reps)
        out["atrium REST runs/search order metrics.m0 DESC"] = timed(asearch("metrics.m0 DESC"), reps)
        out["atrium REST runs/search filter"] = timed(asearch("attributes.start_time DESC", FILTER), reps)
        out["atrium sort part (hx)"] = timed(lambda: get(
            f"{base}?cols=1&order={urllib.parse.quote('metrics.m0 DESC')}&{cols}", hx), reps)
        out["atrium filter part (hx)"] = timed(lambda: get(
            f"{base}?filter={urllib.parse.quote(FILTER)}&cols=1&{cols}&order=", hx), reps)
        out["atrium run page HTML (big run)"] = timed(lambda: get(atrium.chart_url(), h), reps)
        out[f"atrium series 1M points px={chart_px}"] = timed(lambda: get(
            f"{atrium.url}/ui/ws/default/series?run={atrium.seed['big']}&key=loss&px={chart_px}&x=step", h), reps)
        out["atrium compare page HTML (50 runs)"] = timed(lambda: get(atrium.compare_url(), h), reps)
        q = "&".join(f"run={r}" for r in atrium.compare_ids)
        out["atrium series 50 runs × m0"] = timed(lambda: get(
            f"{atrium.url}/ui/ws/default/series?{q}&key=m0&px={chart_px}&x=step", h), reps)
    if mlflow:
        js = {"Content-Type": "application/json"}
        api = f"{mlflow.url}/ajax-api/2.0/mlflow"
        exp = mlflow.seed["exp"]

        def search(order, flt=""):
            body = {"experiment_ids": [exp], "run_view_type": "ACTIVE_ONLY", "max_results": 100, "order_by": [order]}
            if flt:
                body["filter"] = flt
            return lambda: get(f"{api}/runs/search", js, json.dumps(body).encode(), "POST")

        out["mlflow runs/search (page load)"] = timed(search("attributes.start_time DESC"), reps)
        out["mlflow runs/search order metrics.m0"] = timed(search("metrics.`m0` DESC"), reps)
        out["mlflow runs/search filter"] = timed(search("attributes.start_time DESC", FILTER), reps)
        big = mlflow.seed["big"]
        out["mlflow get-history-bulk-interval 320 of 1M"] = timed(lambda: get(
            f"{api}/metrics/get-history-bulk-interval?run_ids={big}&metric_key=loss&max_results=320"), reps)
        out["mlflow get-history first 25000 of 1M"] = timed(lambda: get(
            f"{api}/metrics/get-history?run_uuid={big}&metric_key=loss&max_results=25000"), max(1, reps // 2))
    return out


# ------------------------------------------------------------------ report

def fmt(v):
    return "—" if v is None else (f"{v:.0f}" if v >= 10 else f"{v:.1f}")


ROWS = [
    ("runs", "Runs page interactive (10,000 runs, first page)"),
    ("sort", "Sort by metric m0"),
    ("filter", f"Filter `{FILTER}` + Enter"),
    ("chart", "1M-point metric chart drawn"),
    ("compare", "Compare 50 runs drawn"),
]


def report(res, meta, srv):
    a, m = res.get("Atrium", {}), res.get("MLflow", {})
    L = []
    L.append("| Measurement | Atrium median (min) ms | MLflow median (min) ms | MLflow ÷ Atrium (median) | ≥ 10× | Bar | Atrium ≤ bar |")
    L.append("|---|---|---|---|---|---|---|")
    for key, label in ROWS:
        sa, sm = a.get(key, {}), m.get(key, {})
        am, mm = sa.get("median"), sm.get("median")
        ratio = (mm / am) if (am and mm) else None
        if mm is None and sm.get("timeouts"):
            mcell = f"> {meta['timeout_ms'] / 1000:.0f} s (timed out {sm['timeouts']}×)"
            ratio_s = f"> {meta['timeout_ms'] / am:.0f}×" if am else "—"
        else:
            mcell = f"{fmt(mm)} ({fmt(sm.get('min'))})" if sm else "not run"
            ratio_s = f"{ratio:.1f}×" if ratio else "—"
        acell = f"{fmt(am)} ({fmt(sa.get('min'))})" if sa else "not run"
        ten = "yes" if ratio and ratio >= 10 else ("no" if ratio else "—")
        bar = BARS[key]
        meets = "—" if am is None else ("yes" if am <= bar else "**no**")
        L.append(f"| {label} | {acell} | {mcell} | {ratio_s} | {ten} | ≤ {bar} | {meets} |")
    L.append("")
    L.append("Breakdown (medians, ms from navigation start or from the input event): *DOM ready* is "
             "`DOMContentLoaded` (page loads only: the document parsed and its deferred scripts ran); "
             "*data in* is when the last response the done condition depends on had arrived (the HTML "
             "document, and for Atrium the `/series` or htmx part request, for MLflow its `runs/search` "
             "or `get-history…` XHR); *done* minus *data in* is client work after the data arrived:")
    L.append("")
    L.append("| Measurement | Atrium DOM ready | Atrium data in | Atrium done | MLflow DOM ready | MLflow data in | MLflow done |")
    L.append("|---|---|---|---|---|---|---|")
    for key, label in ROWS:
        sa, sm = a.get(key, {}), m.get(key, {})
        L.append(f"| {label} | {fmt(sa.get('dcl_median'))} | {fmt(sa.get('data_end_median'))} | {fmt(sa.get('median'))} | "
                 f"{fmt(sm.get('dcl_median'))} | {fmt(sm.get('data_end_median'))} | {fmt(sm.get('median'))} |")
    L.append("")
    if srv:
        L.append("Server time, plain HTTP from Python on the same machine (no browser), ms:")
        L.append("")
        L.append("| Request | median | min | bytes |")
        L.append("|---|---|---|---|")
        for k, v in srv.items():
            L.append(f"| {k} | {fmt(v['median'])} | {fmt(v['min'])} | {v['bytes']:,} |")
        L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--atrium")
    ap.add_argument("--atrium-token")
    ap.add_argument("--mlflow")
    ap.add_argument("--mlflow-db")
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=120, help="seconds per measurement")
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--shots", default=None)
    ap.add_argument("--chromium", default=os.environ.get("ATRIUM_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--only", default="", help="comma list of ui names to measure (atrium,mlflow)")
    ap.add_argument("--mlflow-seeded", default="", help="EXP,BIG_EXP: MLflow already seeded (development)")
    ap.add_argument("--only-steps", default="", help="comma list of steps (runs,sort,filter,chart,compare)")
    ap.add_argument("--no-http", action="store_true")
    args = ap.parse_args()

    def log(msg):
        print(msg, flush=True)

    load_start = os.getloadavg()
    started = time.monotonic()
    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "runs": args.runs, "reps": args.reps, "timeout_ms": args.timeout * 1000,
            "cpus": os.cpu_count(), "platform": platform.platform(), "load_start": load_start}
    shots = args.shots or os.path.join(os.path.dirname(os.path.abspath(__file__)), "shots")
    os.makedirs(shots, exist_ok=True)

    atrium = mlflow = None
    if args.atrium:
        log("seeding Atrium (native bulk API + 100 × 10,000-point log calls)…")
        s = data.seed_atrium(args.atrium, args.atrium_token, args.runs)
        meta["seed_atrium_s"] = s["seconds"]
        meta["seed_atrium_runs_s"] = s["seconds_runs"]
        log(f"  {s['seconds']:.1f} s ({s['seconds_runs']:.1f} s for the runs)")
        atrium = Atrium(args.atrium, args.atrium_token, s)
    if args.mlflow and args.mlflow_seeded:
        e, b = args.mlflow_seeded.split(",")
        mlflow = Mlflow(args.mlflow, {"exp": e, "big_exp": b, "big": data.BIG_MLFLOW_ID,
                                      "ids": {data.run_name(i): data.mlflow_run_id(i) for i in range(args.runs)}})
    elif args.mlflow:
        log("seeding MLflow (SQLite directly)…")
        s = data.seed_mlflow(args.mlflow, args.mlflow_db, args.runs)
        meta["seed_mlflow_s"] = s["seconds"]
        log(f"  {s['seconds']:.1f} s")
        mlflow = Mlflow(args.mlflow, s)

    res = {}
    only = set(filter(None, args.only.split(",")))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=args.chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        meta["browser"] = browser.version
        log(f"chromium {browser.version}")
        cookie = ""
        chart_px = 1200
        for ui in (atrium, mlflow):
            if ui is None or (only and ui.name.lower() not in only):
                continue
            log(f"measuring {ui.name}…")
            res[ui.name] = run_ui(browser, ui, args.runs, args.reps, shots, int(args.timeout * 1000), log,
                                  set(filter(None, args.only_steps.split(","))))
            if ui is atrium:
                # the session cookie and the chart's pixel width, for the plain HTTP timings
                ctx = ui.context(browser)
                cookie = "; ".join(f"{c['name']}={c['value']}" for c in ctx.cookies())
                p = ctx.new_page()
                p.goto(ui.chart_url())
                chart_px = p.evaluate("Math.round(document.querySelector('figure.chart[data-keys=\"loss\"]').clientWidth)")
                ctx.close()
        browser.close()
    log("plain HTTP timings…")
    srv = {} if args.no_http else server_times(atrium, mlflow, cookie, args.runs, args.reps, chart_px)
    meta["load_end"] = os.getloadavg()
    meta["wall_s"] = time.monotonic() - started
    table = report(res, meta, srv)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": res, "server": srv}, f, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
