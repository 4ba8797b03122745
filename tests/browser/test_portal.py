"""The portal in a real browser: Playwright drives Debian's Chromium against a live `atrium serve`
(started by tests/tests/portal.rs) holding a train job's run, a registered model `iris` with two
versions and an endpoint `iris-web` with deployments blue and green. Runs are logged here with
the real mlflow client. Every page is checked for console errors and failed requests, and
screenshotted at 1280x800 and 390x844 into $ATRIUM_SHOTS."""

import io
import json
import os
import threading
import time
import unittest
import urllib.request
import zlib
import struct

import mlflow
from mlflow.tracking import MlflowClient
from playwright.sync_api import sync_playwright

URL = os.environ["ATRIUM_URL"].rstrip("/")
TOKEN = os.environ["ATRIUM_TOKEN"]
READER = os.environ["ATRIUM_READER_TOKEN"]
TRAIN_RUN = os.environ["ATRIUM_TRAIN_RUN"]
SWEEP_JOB = os.environ["ATRIUM_SWEEP_JOB"]
SHOTS = os.environ["ATRIUM_SHOTS"]
CHROMIUM = os.environ.get("ATRIUM_CHROMIUM", "/usr/bin/chromium")
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


def png(w=8, h=8):
    """A tiny red PNG."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * w for _ in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class Portal(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        mlflow.set_tracking_uri(URL)
        cls.client = MlflowClient()
        exp = mlflow.set_experiment("portal-e2e")
        cls.exp_id = exp.experiment_id
        cls.runs = {}
        for name, lr, accs in [("fast", "0.3", [0.5, 0.8, 0.95]), ("slow", "0.01", [0.3, 0.5, 0.6]),
                               ("mid", "0.1", [0.4, 0.7, 0.85])]:
            with mlflow.start_run(run_name=name) as r:
                mlflow.log_param("lr", lr)
                mlflow.log_param("layers", "2")
                for step, a in enumerate(accs):
                    mlflow.log_metric("acc", a, step=step)
                    mlflow.log_metric("loss", 1 - a, step=step)
                if name == "fast":
                    mlflow.log_text("hello from the run\n", "notes/readme.txt")
                    mlflow.log_dict({"a": 1, "b": [1, 2]}, "config.json")
                    mlflow.log_text("x,y\n1,2\n3,4\n", "data/table.csv")
                    import tempfile
                    d = tempfile.mkdtemp()
                    p = os.path.join(d, "plot.png")
                    with open(p, "wb") as f:
                        f.write(png())
                    mlflow.log_artifact(p, "images")
            cls.runs[name] = r.info.run_id
        cls.pw = sync_playwright().start()
        cls.browser = cls.pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        print("browser", cls.browser.version)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.pw.stop()

    def setUp(self):
        self.ctx = self.browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.ctx.new_page()
        self.problems = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url} {r.failure}"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))

    def tearDown(self):
        self.ctx.close()
        self.assertEqual(self.problems, [], "console errors or failed requests")

    def sign_in(self, token=TOKEN):
        p = self.page
        p.goto(f"{URL}/ui/login")
        p.fill("input[name=token]", token)
        p.click("button[type=submit]")
        p.wait_for_load_state("networkidle")

    def shoot(self, name):
        p = self.page
        for size, (w, h) in SIZES.items():
            p.set_viewport_size({"width": w, "height": h})
            p.wait_for_timeout(150)
            p.screenshot(path=os.path.join(SHOTS, f"{name}-{size}.png"), full_page=False)
        p.set_viewport_size({"width": 1280, "height": 800})

    def wait_chart(self, selector="figure.chart[data-keys]:not([hidden])"):
        self.page.wait_for_function(
            f"() => [...document.querySelectorAll('{selector}')].every(f => f.querySelector('canvas') || f.dataset.error)",
            timeout=15000)

    def test_1_sign_in_runs_table_filter_and_run_page(self):
        p = self.page
        p.goto(f"{URL}/")
        self.assertIn("Sign in", p.content())
        self.shoot("login")
        self.sign_in()
        self.assertIn("/ui/ws/default", p.url if "/ui/ws/" in p.url else p.url + "/ui/ws/default")
        p.goto(f"{URL}/ui/ws/default")
        self.assertTrue(p.locator("text=portal-e2e").count() >= 1)
        self.shoot("experiments")
        p.click("text=portal-e2e")
        p.wait_for_selector("#runs")
        self.assertEqual(p.locator("#runs tbody tr").count(), 3)
        self.shoot("runs")
        # the filter language with OR (in the URL, so the view can be shared)
        p.fill("#filter", "metrics.acc > 0.9 OR params.lr = '0.01'")
        p.press("#filter", "Enter")
        p.wait_for_function("() => document.querySelectorAll('#runs tbody tr').length === 2")
        names = sorted(p.locator("#runs tbody tr td:nth-child(2) a").all_inner_texts())
        self.assertEqual(names, ["fast", "slow"])
        self.assertIn("filter=", p.url)
        # sorting by a metric column
        p.fill("#filter", "")
        p.press("#filter", "Enter")
        p.wait_for_function("() => document.querySelectorAll('#runs tbody tr').length === 3")
        p.click("#runs thead th a:text-is('metrics.acc')")
        p.wait_for_function("() => document.querySelector('#runs th.sortable.desc')")
        first = p.locator("#runs tbody tr td:nth-child(2) a").first.inner_text()
        self.assertEqual(first, "fast")
        # a syntax error is shown inline with its position
        p.fill("#filter", "metrics.acc >")
        p.press("#filter", "Enter")
        p.wait_for_selector("#filter-error")
        self.assertIn("position 13", p.inner_text("#filter-error"))
        self.shoot("runs-filter-error")
        # the run page: params, metrics, one chart per metric with the logged points
        p.goto(f"{URL}/ui/ws/default/runs/{self.runs['fast']}")
        self.wait_chart()
        self.assertIn("0.3", p.inner_text("#params"))
        charts = p.locator("figure.chart[data-keys]:not([hidden])")
        self.assertEqual(charts.count(), 2)
        acc = p.locator("figure.chart[data-keys=acc]")
        self.assertEqual(acc.get_attribute("data-points"), "3")
        self.assertEqual(acc.get_attribute("data-total"), "3")
        # x axis, log scale and smoothing redraw without errors; two metrics on one chart
        p.select_option("[data-ctl=x]", "rel")
        p.check("[data-ctl=log]")
        p.fill("[data-ctl=smooth]", "0.5")
        p.click("text=One chart for several metrics")
        p.check("[data-combine=acc]")
        p.check("[data-combine=loss]")
        p.wait_for_function("() => document.querySelector('figure.chart.combined canvas')")
        self.wait_chart()
        self.shoot("run")

    def test_2_mlflow_link_lands_on_the_run(self):
        self.sign_in()
        p = self.page
        p.goto(f"{URL}/#/experiments/{self.exp_id}/runs/{self.runs['mid']}")
        p.wait_for_url(f"**/ui/ws/default/runs/{self.runs['mid']}")
        self.assertIn("mid", p.inner_text("h1"))

    def test_3_live_run_chart_grows(self):
        self.sign_in()
        p = self.page
        run = self.client.create_run(self.exp_id, run_name="live").info.run_id
        self.client.log_metric(run, "loss", 1.0, step=0)
        stop = threading.Event()

        def log():
            step = 1
            while not stop.is_set() and step < 200:
                self.client.log_metric(run, "loss", 1.0 / (1 + step), step=step)
                step += 1
                time.sleep(0.2)
        t = threading.Thread(target=log)
        t.start()
        try:
            p.goto(f"{URL}/ui/ws/default/runs/{run}")
            self.wait_chart()
            first = int(p.locator("figure.chart[data-keys=loss]").get_attribute("data-total"))
            p.wait_for_function(
                f"() => Number(document.querySelector('figure.chart[data-keys=loss]').dataset.total) > {first + 3}",
                timeout=15000)
            self.shoot("run-live")
        finally:
            stop.set()
            t.join()
            self.client.set_terminated(run)

    def test_4_compare_two_runs(self):
        self.sign_in()
        p = self.page
        p.goto(f"{URL}/ui/ws/default/experiments/{self.exp_id}")
        p.wait_for_selector("#runs")
        p.locator(f".pick[value='{self.runs['fast']}']").check()
        p.locator(f".pick[value='{self.runs['slow']}']").check()
        p.click("#compare-btn")
        p.wait_for_url("**/compare?runs=*")
        self.wait_chart()
        self.assertEqual(p.locator("#diff thead th").count(), 3)
        # only differences by default: lr differs, layers does not
        self.assertTrue(p.locator("#diff tr.differs th:text-is('params.lr')").is_visible())
        self.assertFalse(p.locator("#diff tr.same th:text-is('params.layers')").is_visible())
        p.uncheck("#diff-only")
        self.assertTrue(p.locator("#diff tr.same th:text-is('params.layers')").is_visible())
        self.assertEqual(p.get_attribute("#parallel", "data-lines"), "2")
        self.assertEqual(p.get_attribute("#scatter", "data-points"), "2")
        acc = p.locator("figure.chart[data-keys=acc] .u-legend .u-series")
        self.assertEqual(acc.count(), 3, "x plus one series per run")
        self.shoot("compare")

    def test_5_artifact_previews_and_job_log(self):
        self.sign_in()
        p = self.page
        p.goto(f"{URL}/ui/ws/default/runs/{self.runs['fast']}")
        p.wait_for_selector("#artifacts ul.files")
        p.click("#artifacts a:text-is('data')")
        p.click("#artifacts a:text-is('table.csv')")
        p.wait_for_selector("#artifacts table.preview-table")
        self.assertEqual(p.locator("#artifacts table.preview-table tbody tr").count(), 2)
        p.click("#artifacts a:text-is('up')")
        p.click("#artifacts a:text-is('up')")
        p.click("#artifacts a:text-is('config.json')")
        p.wait_for_selector("#artifacts pre.preview")
        self.assertIn('"b": [', p.inner_text("#artifacts pre.preview"))
        p.click("#artifacts a:text-is('up')")
        p.click("#artifacts a:text-is('images')")
        p.click("#artifacts a:text-is('plot.png')")
        p.wait_for_function("() => { const i = document.querySelector('#artifacts img'); return i && i.complete && i.naturalWidth === 8; }")
        self.shoot("artifacts")
        # the train job's run: its log is on the page, and the job page has it too
        p.goto(f"{URL}/ui/ws/default/runs/{TRAIN_RUN}")
        p.wait_for_selector("#log pre.log")
        self.assertIn("epoch", p.inner_text("#log").lower())
        p.goto(f"{URL}/ui/ws/default/jobs")
        self.shoot("jobs")
        p.click("#jobs tbody a >> nth=0")
        p.wait_for_selector("#log pre.log")
        self.shoot("job")

    def test_6_move_alias_and_edit_traffic(self):
        self.sign_in()
        p = self.page
        p.goto(f"{URL}/ui/ws/default/models")
        self.shoot("models")
        p.click("text=iris")
        p.wait_for_selector("#alias-form")
        p.fill("#alias-form input[name=alias]", "champion")
        p.select_option("#alias-form select[name=version]", "2")
        p.click("#alias-form button[type=submit]")
        p.wait_for_selector("#flash.ok")
        self.assertIn("version 2", p.inner_text("#aliases"))
        self.assertEqual(self.client.get_model_version_by_alias("iris", "champion").version, "2")
        self.shoot("model")
        # the endpoint: traffic moves from blue to green, and the endpoint serves green
        p.goto(f"{URL}/ui/ws/default/endpoints")
        self.shoot("endpoints")
        p.click("text=iris-web")
        p.wait_for_selector("#live-table")
        p.fill("input[name='traffic.blue']", "0")
        p.fill("input[name='traffic.green']", "90")
        self.assertTrue(p.is_disabled("#traffic-save"), "a split that is not 100 cannot be saved")
        p.fill("input[name='traffic.green']", "100")
        p.click("#traffic-save")
        p.wait_for_selector("#flash.ok")
        body = json.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2]]}).encode()
        for _ in range(5):
            req = urllib.request.Request(f"{URL}/endpoints/iris-web/score", data=body,
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req) as r:
                self.assertEqual(r.headers["x-atrium-deployment"], "green")
        # the test form scores through the server; live counters show the requests
        p.fill("#test-form textarea", json.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2]]}))
        p.click("#test-form button")
        p.wait_for_selector("#test-answer pre")
        self.assertIn("200 from deployment green", p.inner_text("#test-answer"))
        p.wait_for_function("""() => {
            const row = [...document.querySelectorAll('#live-table tbody tr')].find(r => r.cells[0].innerText === 'green');
            return row && Number(row.cells[2].innerText) >= 6;
        }""", timeout=10000)
        self.shoot("endpoint")

    def test_8_sweep_leaderboard_and_register_best(self):
        self.sign_in()
        p = self.page
        p.goto(f"{URL}/ui/ws/default/jobs/{SWEEP_JOB}")
        p.wait_for_selector("#leaderboard")
        self.assertEqual(p.locator("#leaderboard tbody tr").count(), 4)
        self.assertEqual(p.locator("#leaderboard tr.best").count(), 1)
        self.wait_chart()
        self.assertEqual(p.locator("figure.chart.combined .u-legend .u-series").count(), 5, "x plus 4 trials")
        self.shoot("sweep")
        p.fill("#register-best input[name=model]", "iris-best")
        p.click("#register-best button")
        p.wait_for_selector("#flash.ok")
        self.assertIn("registered iris-best version 1", p.inner_text("#flash"))
        best_run = p.locator("#leaderboard tr.best a").get_attribute("href").rsplit("/", 1)[1]
        self.assertEqual(self.client.get_model_version("iris-best", "1").run_id, best_run)
        # the trials in the compare page: parallel coordinates over their params
        p.click("text=compare the trials")
        p.wait_for_url("**/compare?runs=*")
        p.select_option("#pc-metric", "metrics.val_accuracy")
        self.assertEqual(p.get_attribute("#parallel", "data-lines"), "4")

    def test_9_datasets_and_settings(self):
        self.sign_in()
        p = self.page
        p.goto(f"{URL}/ui/ws/default/datasets")
        self.shoot("datasets")
        p.click("#datasets a:text-is('iris')")
        p.wait_for_selector("#preview")
        self.assertEqual(p.locator("#preview tbody tr").count(), 20)
        self.assertGreaterEqual(p.locator("#used-by li").count(), 1, "the train job used iris:1")
        self.shoot("dataset")
        p.goto(f"{URL}/ui/ws/default/settings")
        p.fill("#secret-form input[name=name]", "api-key")
        p.fill("#secret-form input[name=value]", "s3cr3t-value")
        p.click("#secret-form button")
        p.wait_for_selector("#flash.ok")
        self.assertIn("api-key", p.inner_text("#secrets"))
        self.assertNotIn("s3cr3t-value", p.content())
        self.shoot("settings")

    def test_10_components_tokens_and_users(self):
        self.sign_in()
        p = self.page
        p.goto(f"{URL}/ui/ws/default")
        p.click("nav >> text=Components")
        p.wait_for_selector("#components")
        self.shoot("components")
        p.click("#components a:text-is('storage-fs')")
        p.wait_for_selector("#manifest")
        self.assertIn("/data", p.inner_text("#capabilities"))
        self.shoot("component")
        # your tokens: create one (shown once), then revoke it
        p.click("header a.user")
        p.wait_for_selector("#tokens")
        p.fill("#token-form input[name=description]", "notebook")
        p.fill("#token-form input[name=expires_days]", "7")
        p.click("#token-form button")
        p.wait_for_selector("#new-token-value")
        value = p.inner_text("#new-token-value").strip()
        self.assertTrue(value.startswith("atr_"), value)
        self.shoot("tokens")
        row = p.locator("#tokens tr", has_text="notebook")
        p.once("dialog", lambda d: d.accept())
        row.locator("button:text-is('revoke')").click()
        p.wait_for_selector("#flash.ok")
        self.assertIn("revoked", p.locator("#tokens tr", has_text="notebook").inner_text())
        # users (server admins)
        p.click("header >> text=Users")
        p.wait_for_selector("#users")
        self.assertIn("rita", p.inner_text("#users"))
        self.shoot("users")

    def api(self, method, path, body=None):
        """A REST call as the admin; the answer's JSON."""
        req = urllib.request.Request(
            f"{URL}/api/v1/workspaces/default{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read() or b"null")

    def pipeline_run(self):
        """Submits a run of `demo` and waits for it to complete; its id."""
        run = self.api("POST", "/pipelines/demo/runs", {})["id"]
        deadline = time.time() + 120
        while True:
            v = self.api("GET", f"/pipeline-runs/{run}")
            if v["state"] == "Completed":
                return run
            self.assertNotIn(v["state"], ("Failed", "Canceled"), v)
            self.assertLess(time.time(), deadline, f"pipeline run did not finish: {v}")
            time.sleep(0.2)

    def test_11_pipelines_run_steps_and_schedules(self):
        self.api("POST", "/pipelines", {
            "name": "demo", "description": "two steps, b after a",
            "inputs": {"n": {"type": "integer", "default": 1}},
            "jobs": {
                "a": {"type": "command", "command": "echo ${{parent.inputs.n}} > $ATRIUM_OUTPUTS/x",
                      "outputs": {"x": {"type": "integer"}}},
                "b": {"type": "command", "command": "echo $((${{parent.jobs.a.outputs.x}} + 1)) > $ATRIUM_OUTPUTS/y",
                      "outputs": {"y": {"type": "integer"}}}}})
        first = self.pipeline_run()
        # the same inputs again: both steps are cache hits of the first run
        second = self.pipeline_run()
        self.api("PUT", "/schedules/nightly", {
            "pipeline": "demo@latest", "trigger": {"type": "cron", "expression": "0 2 * * *"},
            "time_zone": "Europe/Berlin"})
        self.sign_in()
        p = self.page
        p.goto(f"{URL}/ui/ws/default")
        p.click("nav >> text=Pipelines")
        p.wait_for_selector("#pipelines")
        row = p.locator("#pipelines tbody tr", has_text="demo")
        self.assertIn("v1", row.inner_text())
        self.assertIn("n", row.locator("td:nth-child(4)").inner_text())
        self.assertIn("2 (2 cached)", p.locator("#pipeline-runs tr", has_text=second).inner_text())
        self.shoot("pipelines")
        p.click(f"#pipeline-runs a:text-is('{first}')")
        p.wait_for_url(f"**/pipelines/runs/{first}")
        self.assertEqual(p.inner_text("#prun-state"), "Completed")
        steps = p.locator("#steps tbody tr[data-step]")
        self.assertEqual(steps.count(), 2)
        for name in ("a", "b"):
            self.assertEqual(p.locator(f"#steps tr[data-step={name}] .badge").inner_text(), "Completed")
            self.assertEqual(p.locator(f"#steps tr[data-step={name}] a[href*='/jobs/']").count(), 1)
            self.assertEqual(p.locator(f"#steps tr[data-step={name}] a[href*='/runs/']").count(), 1)
        b = p.locator("#steps tr[data-step=b]")
        self.assertEqual(b.locator("td:nth-child(4)").inner_text(), "a")
        self.assertIn("y=2", b.locator("td.outputs").inner_text())
        self.assertIn("1", p.inner_text("#prun-inputs"))
        self.assertEqual(p.locator("#prun-run").count(), 1, "a link to the tracking run")
        self.shoot("pipeline-run")
        # the cached run: Cached (not Completed), reusing the first run's steps
        p.goto(f"{URL}/ui/ws/default/pipelines/runs/{second}")
        b = p.locator("#steps tr[data-step=b]")
        self.assertEqual(b.locator(".badge").inner_text(), "Cached")
        self.assertIn("badge cached", b.locator(".badge").get_attribute("class"))
        self.assertIn("y=2", b.locator("td.outputs").inner_text())
        b.locator(f"a:text-is('{first}')").click()
        p.wait_for_url(f"**/pipelines/runs/{first}")
        # the tracking run of a step opens the run page
        p.locator("#steps tr[data-step=b] a[href*='/runs/']").click()
        p.wait_for_url("**/ui/ws/default/runs/*")
        # schedules: the trigger, its zone and the next ticks
        p.click("nav >> text=Schedules")
        p.wait_for_selector("#schedules")
        row = p.locator("#schedules tr[data-schedule=nightly]")
        self.assertIn("nightly", row.inner_text())
        self.assertIn("demo@latest", row.inner_text())
        self.assertIn("Europe/Berlin", row.inner_text())
        self.assertRegex(row.locator("td.next").inner_text(), r"\d{4}-\d\d-\d\dT\d\d:\d\d")
        self.shoot("schedules")

    def test_12_live_pipeline_run_is_canceled(self):
        self.api("POST", "/pipelines", {
            "name": "slow", "jobs": {"nap": {"type": "command", "command": "sleep 60"}}})
        run = self.api("POST", "/pipelines/slow/runs", {})["id"]
        self.sign_in()
        p = self.page
        p.goto(f"{URL}/ui/ws/default/pipelines/runs/{run}")
        # the page polls itself while the run is not over: the step starts without a reload
        p.wait_for_function("() => document.querySelector('#steps tr[data-step=nap] .badge').innerText === 'Running'",
                            timeout=30000)
        self.assertEqual(p.get_attribute("#prun-body", "hx-trigger"), "every 2s")
        p.once("dialog", lambda d: d.accept())
        p.click("#prun-body button:text-is('Cancel')")
        p.wait_for_selector("#flash.ok")
        p.wait_for_function("() => document.querySelector('#prun-state').innerText === 'Canceled'", timeout=30000)
        self.assertEqual(p.inner_text("#steps tr[data-step=nap] .badge"), "Canceled")
        self.assertIsNone(p.get_attribute("#prun-body", "hx-trigger"), "a finished run stops polling")
        self.assertEqual(p.locator("#prun-body button:text-is('Cancel')").count(), 0)
        self.shoot("pipeline-run-canceled")

    def test_7_reader_sees_no_write_controls_and_forged_posts_fail(self):
        self.sign_in(READER)
        p = self.page
        p.goto(f"{URL}/ui/ws/default/models/iris")
        self.assertEqual(p.locator("#alias-form").count(), 0)
        p.goto(f"{URL}/ui/ws/default/endpoints/iris-web")
        self.assertEqual(p.locator("input.pct").count(), 0)
        self.assertEqual(p.locator("#test-form").count(), 0)
        self.shoot("endpoint-reader")
        csrf = p.evaluate("() => JSON.parse(document.body.getAttribute('hx-headers'))['X-Atrium-Csrf']")
        # a forged write with the Reader's own session and token: refused by role
        r = p.request.post(f"{URL}/ui/ws/default/endpoints/iris-web/traffic",
                           form={"traffic.blue": "100"}, headers={"x-atrium-csrf": csrf})
        self.assertEqual(r.status, 403)
        # without the CSRF token: refused before the role is looked at
        r = p.request.post(f"{URL}/ui/ws/default/models/iris/alias", form={"alias": "champion", "version": "1"})
        self.assertEqual(r.status, 403)
        self.assertIn("CSRF", r.text())
        self.assertEqual(self.client.get_model_version_by_alias("iris", "champion").version, "2")
        # sign out
        p.goto(f"{URL}/ui/ws/default")
        p.click("text=Sign out")
        p.wait_for_url("**/ui/login")


if __name__ == "__main__":
    unittest.main()
