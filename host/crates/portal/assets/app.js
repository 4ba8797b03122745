// Atrium portal: the small scripts behind server-rendered pages (htmx does navigation and
// forms). Charts use uPlot; the server downsamples every series to the chart's pixel width.
"use strict";
(function () {
  const $ = (s, el) => (el || document).querySelector(s);
  const $$ = (s, el) => Array.from((el || document).querySelectorAll(s));

  // MLflow client links: http://host/#/experiments/E/runs/R (or /ws/W/#/...) land on the run.
  function followMlflowLink() {
    const h = location.hash;
    if (!h.startsWith("#/")) return false;
    const m = location.pathname.match(/^\/(?:ws\/([^/]+)\/?)?$/);
    if (!m) return false;
    const ws = encodeURIComponent(decodeURIComponent(m[1] || "default"));
    let r;
    if ((r = h.match(/^#\/experiments\/([^/?]+)\/runs\/([^/?]+)/))) {
      location.replace(`/ui/ws/${ws}/runs/${r[2]}`);
    } else if ((r = h.match(/^#\/experiments\/([^/?]+)/))) {
      location.replace(`/ui/ws/${ws}/experiments/${r[1]}`);
    } else if ((r = h.match(/^#\/models\/([^/?]+)/))) {
      location.replace(`/ui/ws/${ws}/models/${r[1]}`);
    } else {
      location.replace(`/ui/ws/${ws}`);
    }
    return true;
  }
  if (followMlflowLink()) return;
  window.addEventListener("hashchange", followMlflowLink);

  document.addEventListener("change", (e) => {
    const t = e.target;
    if (t.id === "ws-switch" && t.value) location.href = "/ui/ws/" + encodeURIComponent(t.value);
    if (t.classList.contains("pick") || t.id === "select-all") runsSelection(t);
    if (t.id === "diff-only") diffOnly();
    if (t.matches("[data-ctl]") || t.matches("[data-combine]")) redrawAll();
    if (t.id === "pc-metric") drawParallel();
    if (t.id === "sc-x" || t.id === "sc-y") drawScatter();
  });
  document.addEventListener("input", (e) => {
    if (e.target.classList.contains("pct")) trafficSum();
    if (e.target.matches("[data-ctl=smooth]")) redrawAll(true);
  });
  document.addEventListener("click", (e) => {
    const b = e.target.closest("#compare-btn");
    if (!b) return;
    const ids = $$(".pick:checked").map((c) => c.value);
    if (ids.length >= 2) location.href = `${b.dataset.base}?runs=${ids.join(",")}`;
  });

  // Swapping the runs table: empty the old one first, so htmx does not walk and clean each of
  // its hundreds of elements one by one (the table holds no polling or SSE triggers to stop);
  // this is most of a sort's or filter's time in the browser otherwise.
  document.addEventListener("htmx:beforeSwap", (e) => {
    const t = e.detail.target;
    if (e.detail.shouldSwap && t && t.id === "runs-table") t.replaceChildren();
  });

  // ---- runs table: multi-select → compare
  function runsSelection(t) {
    if (t.id === "select-all") $$(".pick").forEach((c) => (c.checked = t.checked));
    const n = $$(".pick:checked").length;
    const b = $("#compare-btn");
    if (b) {
      b.disabled = n < 2 || n > 100;
      b.textContent = n ? `Compare ${n} selected` : "Compare selected";
    }
  }

  // ---- compare: differences only
  function diffOnly() {
    const on = $("#diff-only") && $("#diff-only").checked;
    $$("#diff tr.same").forEach((tr) => tr.classList.toggle("hidden", !!on));
  }

  // ---- endpoint: traffic must sum to 100
  function trafficSum() {
    const f = $("#traffic-form");
    if (!f) return;
    const vals = $$("input[name^='traffic.']", f).map((i) => Number(i.value || 0));
    const sum = vals.reduce((a, b) => a + b, 0);
    const s = $("#traffic-sum");
    const save = $("#traffic-save");
    if (s) {
      s.textContent = `traffic sums to ${sum}%` + (sum === 100 ? "" : " (must be 100)");
      s.className = sum === 100 ? "muted" : "error";
    }
    if (save) save.disabled = sum !== 100;
  }

  // ---- charts
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const charts = new Map(); // figure → {plot, data, range}

  function controls() {
    const c = $("#chart-controls");
    const get = (k) => c && $(`[data-ctl=${k}]`, c);
    return {
      x: (get("x") && get("x").value) || "step",
      log: !!(get("log") && get("log").checked),
      smooth: Number((get("smooth") && get("smooth").value) || 0),
    };
  }

  function ema(ys, a) {
    if (!a) return ys;
    const out = new Array(ys.length);
    let last = 0, n = 0;
    for (let i = 0; i < ys.length; i++) {
      const y = ys[i];
      if (y == null || !isFinite(y)) { out[i] = y; continue; }
      last = last * a + (1 - a) * y; n++;
      out[i] = last / (1 - Math.pow(a, n)); // debiased, as TensorBoard
    }
    return out;
  }

  async function fetchSeries(box, keys, px, range) {
    const q = new URLSearchParams();
    box.dataset.runs.split(",").filter(Boolean).forEach((r) => q.append("run", r));
    keys.forEach((k) => q.append("key", k));
    q.set("px", String(Math.max(50, Math.round(px))));
    q.set("x", controls().x);
    if (range) { q.set("from", String(range[0])); q.set("to", String(range[1])); }
    const r = await fetch(`${box.dataset.src}?${q}`, { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(`series: HTTP ${r.status}`);
    return r.json();
  }

  function build(fig, resp) {
    const ctl = controls();
    const series = resp.series.filter((s) => s.x.length);
    const old = charts.get(fig);
    if (old && old.plot) old.plot.destroy();
    $$(".empty", fig).forEach((e) => e.remove());
    if (!series.length) {
      const p = document.createElement("p");
      p.className = "muted empty"; p.textContent = "no points";
      fig.appendChild(p);
      charts.set(fig, { plot: null, resp });
      return;
    }
    const tables = series.map((s) => [s.x, ema(s.y, ctl.smooth)]);
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    const multiKey = new Set(series.map((s) => s.key)).size > 1;
    const width = Math.max(240, fig.clientWidth - 14);
    const opts = {
      width, height: 220,
      scales: { x: { time: ctl.x === "time" }, y: { distr: ctl.log ? 3 : 1 } },
      axes: [{ label: ctl.x === "rel" ? "seconds" : ctl.x === "time" ? "" : "step" }, {}],
      cursor: { drag: { x: true, y: false } },
      series: [{}].concat(series.map((s, i) => ({
        label: multiKey ? `${s.name} · ${s.key}` : s.name,
        stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: true, points: { show: false },
      }))),
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 4) return;
          const from = u.posToVal(u.select.left, "x"), to = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, width: 0 }, false);
          zoom(fig, [from, to]);
        }],
      },
    };
    const plot = new uPlot(opts, data, fig);
    plot.root.addEventListener("dblclick", () => zoom(fig, null));
    charts.set(fig, { plot, resp, keys: keysOf(fig) });
    fig.dataset.points = String(series.reduce((a, s) => a + s.x.length, 0));
    fig.dataset.total = String(series.reduce((a, s) => a + s.total, 0));
  }

  function keysOf(fig) { return (fig.dataset.keys || "").split(",").filter(Boolean); }

  async function draw(fig, range) {
    const box = fig.closest(".charts");
    const keys = keysOf(fig);
    if (!keys.length) return;
    try {
      const resp = await fetchSeries(box, keys, fig.clientWidth || 600, range);
      fig.dataset.range = range ? range.join(",") : "";
      build(fig, resp);
      return resp;
    } catch (e) {
      fig.dataset.error = String(e);
    }
  }

  async function zoom(fig, range) { await draw(fig, range); }

  function redrawAll(localOnly) {
    const combined = $("figure.chart.combined");
    if (combined) {
      const ks = $$("[data-combine]:checked").map((c) => c.dataset.combine);
      combined.dataset.keys = ks.join(",");
      combined.hidden = ks.length === 0;
      if (ks.length === 0 && charts.get(combined)) { const c = charts.get(combined); if (c.plot) c.plot.destroy(); charts.delete(combined); }
    }
    $$("figure.chart[data-keys]").forEach((fig) => {
      if (fig.hidden || !keysOf(fig).length) return;
      const c = charts.get(fig);
      if (localOnly && c && c.resp) build(fig, c.resp);
      else draw(fig, fig.dataset.range ? fig.dataset.range.split(",").map(Number) : null);
    });
  }

  function initCharts() {
    const box = $(".charts");
    if (!box) return;
    // lazily: a chart is fetched when it scrolls into view
    const io = new IntersectionObserver((entries) => {
      entries.forEach((en) => {
        if (en.isIntersecting && !en.target.dataset.drawn) {
          en.target.dataset.drawn = "1";
          draw(en.target, null);
        }
      });
    }, { rootMargin: "200px" });
    // those already in view are fetched at once (the observer's first report comes a frame or
    // two later), the rest when they come near the viewport
    $$("figure.chart[data-keys]", box).forEach((f) => {
      if (!keysOf(f).length) return;
      if (!f.hidden && f.getBoundingClientRect().top < innerHeight + 200) {
        f.dataset.drawn = "1";
        draw(f, null);
      } else io.observe(f);
    });
    if (box.dataset.live === "true") {
      const tick = async () => {
        let live = false;
        for (const fig of $$("figure.chart[data-keys]", box)) {
          if (!fig.dataset.drawn || fig.hidden || fig.dataset.range) continue;
          const resp = await draw(fig, null);
          if (resp && resp.live) live = true;
        }
        if (live) setTimeout(tick, 2000);
        else refreshStatus();
      };
      setTimeout(tick, 2000);
    }
  }

  async function refreshStatus() {
    // the run ended: reload once so status, metrics and the log show their final state
    if (!sessionStorage.getItem("reloaded:" + location.pathname)) {
      sessionStorage.setItem("reloaded:" + location.pathname, "1");
      location.reload();
    }
  }

  // ---- compare: parallel coordinates and scatter over params and latest metrics
  function compareData() {
    const el = $("#compare-data");
    return el ? JSON.parse(el.textContent) : null;
  }
  function numericKeys(d) {
    const keys = new Set();
    d.runs.forEach((r) => Object.keys(r.values).forEach((k) => keys.add(k)));
    return Array.from(keys).sort();
  }
  function asNumber(v) {
    const n = typeof v === "number" ? v : Number(v);
    return v === undefined || v === null || v === "" || !isFinite(n) ? null : n;
  }
  function initCompare() {
    const d = compareData();
    if (!d) return;
    diffOnly();
    const keys = numericKeys(d);
    const metrics = keys.filter((k) => k.startsWith("metrics."));
    const fill = (sel, list, pick) => {
      if (!sel) return;
      sel.innerHTML = "";
      list.forEach((k) => { const o = document.createElement("option"); o.value = k; o.textContent = k; sel.appendChild(o); });
      if (pick) sel.value = pick;
    };
    fill($("#pc-metric"), metrics, metrics[0]);
    fill($("#sc-x"), keys, keys.find((k) => k.startsWith("params.")) || keys[0]);
    fill($("#sc-y"), keys, metrics[0] || keys[1]);
    drawParallel();
    drawScatter();
  }
  function drawParallel() {
    const d = compareData(), cv = $("#parallel");
    if (!d || !cv) return;
    const metric = $("#pc-metric").value;
    const axes = numericKeys(d).filter((k) => k.startsWith("params.") || k === metric);
    const ordered = axes.filter((k) => k !== metric).concat(metric ? [metric] : []);
    const dpr = window.devicePixelRatio || 1, W = cv.clientWidth || 900, H = 320;
    cv.width = W * dpr; cv.height = H * dpr;
    const g = cv.getContext("2d");
    g.scale(dpr, dpr);
    g.clearRect(0, 0, W, H);
    const fg = getComputedStyle(document.body).color;
    g.font = "12px system-ui"; g.fillStyle = fg; g.strokeStyle = fg;
    if (ordered.length < 2) { g.fillText("needs two numeric params or metrics", 10, 20); return; }
    const pad = 40, top = 24, bottom = H - 24;
    const xs = ordered.map((_, i) => pad + (i * (W - 2 * pad)) / (ordered.length - 1));
    const ranges = ordered.map((k) => {
      const v = d.runs.map((r) => asNumber(r.values[k])).filter((x) => x !== null);
      const lo = Math.min(...v), hi = Math.max(...v);
      return [lo, hi === lo ? lo + 1 : hi];
    });
    const mr = ranges[ranges.length - 1];
    d.runs.forEach((r) => {
      const m = asNumber(r.values[metric]);
      const t = m === null ? 0 : (m - mr[0]) / (mr[1] - mr[0]);
      g.strokeStyle = `hsl(${240 - 240 * t}, 70%, 50%)`;
      g.beginPath();
      let started = false;
      ordered.forEach((k, i) => {
        const v = asNumber(r.values[k]);
        if (v === null) { started = false; return; }
        const y = bottom - ((v - ranges[i][0]) / (ranges[i][1] - ranges[i][0])) * (bottom - top);
        if (started) g.lineTo(xs[i], y); else g.moveTo(xs[i], y);
        started = true;
      });
      g.stroke();
    });
    g.strokeStyle = fg; g.fillStyle = fg;
    ordered.forEach((k, i) => {
      g.beginPath(); g.moveTo(xs[i], top); g.lineTo(xs[i], bottom); g.stroke();
      g.textAlign = i === 0 ? "left" : i === ordered.length - 1 ? "right" : "center";
      g.fillText(k.replace(/^(params|metrics)\./, ""), xs[i], 14);
      g.fillText(String(+ranges[i][1].toPrecision(4)), xs[i], top - 2 + 12);
      g.fillText(String(+ranges[i][0].toPrecision(4)), xs[i], H - 6);
    });
    cv.dataset.lines = String(d.runs.length);
  }
  let scatter = null;
  function drawScatter() {
    const d = compareData(), fig = $("#scatter");
    if (!d || !fig || typeof uPlot === "undefined") return;
    const kx = $("#sc-x").value, ky = $("#sc-y").value;
    const pts = d.runs.map((r) => [asNumber(r.values[kx]), asNumber(r.values[ky])]).filter((p) => p[0] !== null && p[1] !== null).sort((a, b) => a[0] - b[0]);
    if (scatter) scatter.destroy();
    scatter = new uPlot({
      width: Math.max(240, fig.clientWidth - 14), height: 260,
      scales: { x: { time: false } },
      axes: [{ label: kx }, { label: ky }],
      series: [{}, { label: ky, stroke: PALETTE[0], paths: () => null, points: { show: true, size: 7, fill: PALETTE[0] } }],
    }, [pts.map((p) => p[0]), pts.map((p) => p[1])], fig);
    fig.dataset.points = String(pts.length);
  }

  function start() {
    initCharts();
    initCompare();
    trafficSum();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
