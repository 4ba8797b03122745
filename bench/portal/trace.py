"""Where the browser's time goes on Atrium's portal pages: loads each page (and the sort action)
with a Chrome trace (devtools.timeline) and sums the renderer main thread's top-level work by
kind (HTML parsing, script, style, layout, paint, GC). For a running, seeded server:

  bench/portal/.venv/bin/python bench/portal/trace.py --atrium URL --token T --exp N --big RUN_ID \
      --compare ID,ID,...

(run.sh prints nothing of this; it is a diagnosis tool.)"""

import argparse
import collections
import json

from playwright.sync_api import sync_playwright

KINDS = {
    "ParseHTML": "parse HTML", "EvaluateScript": "script", "v8.compile": "script compile",
    "v8.evaluateModule": "script", "FunctionCall": "script", "TimerFire": "script",
    "EventDispatch": "script (events)", "FireAnimationFrame": "script (rAF)",
    "RunMicrotasks": "script (microtasks)", "v8.run": "script",
    "UpdateLayoutTree": "style", "RecalculateStyles": "style", "ParseAuthorStyleSheet": "parse CSS",
    "Layout": "layout", "PrePaint": "paint", "Paint": "paint", "Layerize": "paint",
    "UpdateLayer": "paint", "Commit": "paint", "MajorGC": "GC", "MinorGC": "GC",
    "XHRReadyStateChange": "script (xhr)", "XHRLoad": "script (xhr)",
}


ORIGIN = "127.0.0.1"


def summarize(events, t_from=None, t_to=None):
    # the renderer main thread that ran this server's page: the one whose events name its URLs
    mains = {(e["pid"], e["tid"]) for e in events
             if e.get("name") == "thread_name" and e.get("args", {}).get("name") == "CrRendererMain"}
    hits = collections.Counter((e.get("pid"), e.get("tid")) for e in events
                               if (e.get("pid"), e.get("tid")) in mains
                               and ORIGIN in json.dumps(e.get("args", {}).get("data", {}).get("url", "")))
    main = hits.most_common(1)[0][0] if hits else None
    out = collections.Counter()
    spans = sorted((e for e in events if (e.get("pid"), e.get("tid")) == main and e.get("ph") == "X"
                    and "dur" in e), key=lambda e: e["ts"])
    end_covered = 0
    for e in spans:
        kind = KINDS.get(e["name"])
        if kind is None:
            continue
        if t_from is not None and e["ts"] < t_from:
            continue
        if t_to is not None and e["ts"] > t_to:
            continue
        if e["ts"] < end_covered:  # nested inside a counted event
            continue
        if kind.startswith("script"):
            d = e.get("args", {}).get("data", {})
            src = (d.get("url") or d.get("functionName") or d.get("type") or "").split("/")[-1].split("?")[0]
            if src:
                kind = f"{kind}: {src[:40]}"
        out[kind] += e["dur"] / 1000
        end_covered = e["ts"] + e["dur"]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--atrium", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--exp", required=True)
    ap.add_argument("--big", required=True)
    ap.add_argument("--compare", required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    global ORIGIN
    ORIGIN = a.atrium.split("//", 1)[-1]
    pages = {
        "runs page": f"{a.atrium}/ui/ws/default/experiments/{a.exp}",
        "run page (1M chart)": f"{a.atrium}/ui/ws/default/runs/{a.big}",
        "compare 50": f"{a.atrium}/ui/ws/default/compare?runs={a.compare}",
    }
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=a.chromium, args=["--no-sandbox", "--disable-gpu"])
        ctx = b.new_context(viewport={"width": 1280, "height": 800})
        p = ctx.new_page()
        p.goto(f"{a.atrium}/ui/login")
        p.fill("input[name=token]", a.token)
        p.click("button[type=submit]")
        p.wait_for_load_state("networkidle")
        p.close()
        cats = "devtools.timeline,v8,disabled-by-default-devtools.timeline"
        for name, url in list(pages.items()) + [("sort action", None)]:
            total = collections.Counter()
            for i in range(a.reps + 1):
                p = ctx.new_page()
                if url is None:
                    p.goto(pages["runs page"], wait_until="load")
                    p.wait_for_timeout(300)
                b.start_tracing(page=p, categories=cats.split(","))
                if url is None:
                    p.click("#runs thead th a:text-is('metrics.m0')")
                    p.wait_for_selector("#runs th.sortable.desc")
                else:
                    p.goto(url, wait_until="load")
                    p.wait_for_load_state("networkidle")
                p.wait_for_timeout(200)
                raw = b.stop_tracing()
                p.close()
                if i == 0:
                    continue  # warm-up
                ev = json.loads(raw)
                ev = ev["traceEvents"] if isinstance(ev, dict) else ev
                total.update(summarize(ev))
            print(f"{name}: main-thread ms per load (mean of {a.reps}):")
            for k, v in total.most_common(12):
                print(f"   {v / a.reps:7.1f}  {k}")
        b.close()


if __name__ == "__main__":
    main()
