//! Sweep strategy overhead, no training: the built-in sampler and stopper components driven the
//! way the host's sweep loop drives them, next to Optuna's ask/tell on the same search space
//! (`bench/python/strategy_peer.py`, run from here).
//!
//! Per trial, as `host/src/jobs/sweep.rs` does with one trial at a time: `suggest(1)` and a
//! snapshot; then for each of up to 20 steps a report, and a stop decision at the steps the
//! schedule judges (step >= `delay_evaluation` = 5, on multiples of `evaluation_interval` = 1,
//! not the last epoch: 15 calls for a trial that runs to the end; the history handed to the
//! stopper is every report of every trial up to the current step, rebuilt each time as the host
//! rebuilds it; running = this trial), ending early when the stopper says so; then `observe`
//! and a snapshot. The objective is a synthetic function of the parameters with a
//! saturating learning curve (identical on both sides), so the time is the strategy's alone.
//!
//! Reported: mean time per trial over the 20 trials ending at trial 100, 500 and 1000, for
//! random and TPE, with and without the median stopper (delay 5), with and without snapshots;
//! and where the time goes at trial 1000.
//!
//! Usage: sweep-bench [--python PATH] [--trials N] [--skip-peer]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use atrium::plugins::builtin;
use atrium::plugins::strategy::{Dimension, ParamValue, Progress, Stopper, StrategyPlugin, Study};
use atrium::plugins::{Kind, Loader, PluginEngine};
use serde_json::{Value, json};

const STEPS: u64 = 20;
/// The median policy's schedule (the host's `judged_at` and the plugin apply the same).
const DELAY: u64 = 5;
const INTERVAL: u64 = 1;
const WINDOW: usize = 20;
const MARKS: [usize; 3] = [100, 500, 1000];
const HIDDEN: [&str; 5] = ["[32]", "[64]", "[128]", "[64,64]", "[128,64]"];
const BATCH: [&str; 3] = ["32", "64", "128"];

fn dims() -> Vec<Dimension> {
    let num = |name: &str, low: f64, high: f64| Dimension {
        name: name.into(),
        kind: "loguniform".into(),
        low: Some(low),
        high: Some(high),
        choices: Vec::new(),
        log: true,
        q: None,
    };
    let choice = |name: &str, values: &[&str]| Dimension {
        name: name.into(),
        kind: "choice".into(),
        low: None,
        high: None,
        choices: values.iter().map(|v| v.to_string()).collect(),
        log: false,
        q: None,
    };
    // in name order, as the host passes them
    vec![
        num("alpha", 1e-6, 1e-2),
        choice("batch", &BATCH),
        choice("hidden", &HIDDEN),
        num("lr", 1e-4, 1e-1),
    ]
}

/// The synthetic learning curve: the value at `step` (1-based) of a trial with these params.
/// Same formula as `strategy_peer.py`.
fn curve(params: &[(String, ParamValue)], step: u64) -> f64 {
    let (mut lr, mut alpha, mut hidden, mut batch) = (1e-3, 1e-4, 0usize, 0usize);
    for (k, v) in params {
        match (k.as_str(), v) {
            ("lr", ParamValue::Float(f)) => lr = *f,
            ("alpha", ParamValue::Float(f)) => alpha = *f,
            ("hidden", ParamValue::Text(t)) => {
                hidden = HIDDEN.iter().position(|h| h == t).expect("hidden")
            }
            ("batch", ParamValue::Text(t)) => {
                batch = BATCH.iter().position(|b| b == t).expect("batch")
            }
            other => panic!("unexpected parameter {other:?}"),
        }
    }
    let (l, a) = (lr.log10(), alpha.log10());
    let fin = 0.98
        - 0.04 * (l + 2.5).powi(2)
        - 0.005 * (a + 4.0).powi(2)
        - [0.03, 0.015, 0.0, 0.01, 0.005][hidden]
        - [0.0, 0.005, 0.012][batch];
    let rate = 0.1 + 0.15 * (l + 4.0);
    fin * (1.0 - (-(step as f64) * rate).exp())
}

#[derive(Default, Clone, Copy)]
struct Split {
    suggest: f64,
    snapshot: f64,
    decide: f64,
    observe: f64,
}

impl Split {
    fn total(&self) -> f64 {
        self.suggest + self.snapshot + self.decide + self.observe
    }
}

struct Outcome {
    per_trial: Vec<Split>,
    stopped: usize,
    best: f64,
    /// Every trial's reports at the end.
    steps: Vec<(u64, Vec<(u64, f64)>)>,
}

fn simulate(
    sampler: &StrategyPlugin,
    stopper: Option<&StrategyPlugin>,
    snapshots: bool,
    trials: usize,
    seed: u64,
) -> Outcome {
    let opts = format!(r#"{{"evaluation_interval":{INTERVAL},"delay_evaluation":{DELAY}}}"#);
    // as the wall-time sweeps and Optuna's TPESampler(n_startup_trials=10); random takes none
    let options = if sampler.label == "sampler-tpe" {
        vec![("n_startup_trials".to_string(), ParamValue::Int(10))]
    } else {
        Vec::new()
    };
    let mut study =
        Study::create(sampler.clone(), &dims(), true, seed, &options).expect("create study");
    let mut stop = stopper.map(|p| Stopper::new(p.clone()));
    // every trial's reports, as the host keeps them (in trial order)
    let mut steps: Vec<(u64, Vec<(u64, f64)>)> = Vec::with_capacity(trials);
    let mut per_trial = Vec::with_capacity(trials);
    let (mut stopped, mut best) = (0usize, f64::NEG_INFINITY);
    for _ in 0..trials {
        let mut s = Split::default();
        let t = Instant::now();
        let trial = study.suggest(1).expect("suggest").remove(0);
        s.suggest = t.elapsed().as_secs_f64();
        if snapshots {
            let t = Instant::now();
            std::hint::black_box(study.snapshot().expect("snapshot"));
            s.snapshot += t.elapsed().as_secs_f64();
        }
        steps.push((trial.id, Vec::with_capacity(STEPS as usize)));
        let mut value = f64::NAN;
        let mut was_stopped = false;
        for step in 1..=STEPS {
            value = curve(&trial.params, step);
            steps.last_mut().expect("this trial").1.push((step, value));
            let judged = step >= DELAY && step.is_multiple_of(INTERVAL) && step < STEPS;
            if let Some(st) = stop.as_mut() {
                let t = Instant::now();
                st.observe(Progress {
                    trial_id: trial.id,
                    step,
                    value,
                });
                s.decide += t.elapsed().as_secs_f64();
            }
            if let Some(st) = stop.as_mut().filter(|_| judged) {
                let t = Instant::now();
                let ids = st.decide(true, &opts, step, &[trial.id]).expect("decide");
                s.decide += t.elapsed().as_secs_f64();
                if ids.contains(&trial.id) {
                    was_stopped = true;
                    break;
                }
            }
        }
        // a stopped trial reports its best step, a completed one its last
        let reported = if was_stopped {
            stopped += 1;
            steps
                .last()
                .expect("this trial")
                .1
                .iter()
                .map(|p| p.1)
                .fold(f64::NEG_INFINITY, f64::max)
        } else {
            value
        };
        if !was_stopped {
            best = best.max(value);
        }
        let t = Instant::now();
        study
            .observe(trial.id, Some(reported), false)
            .expect("observe");
        s.observe = t.elapsed().as_secs_f64();
        if snapshots {
            let t = Instant::now();
            std::hint::black_box(study.snapshot().expect("snapshot"));
            s.snapshot += t.elapsed().as_secs_f64();
        }
        per_trial.push(s);
    }
    Outcome {
        per_trial,
        stopped,
        best,
        steps,
    }
}

/// Where one stop decision's time goes with a given history: building the history as the host
/// does, moving it into a stopper that does nothing (`fx_stopper`, the fixture), and the
/// median stopper's whole call. Means in ms over `reps` calls.
fn profile_decide(
    steps: &[(u64, Vec<(u64, f64)>)],
    step: u64,
    median: &StrategyPlugin,
    nothing: Option<&StrategyPlugin>,
    reps: usize,
) -> (usize, f64, Option<f64>, f64) {
    let opts = format!(r#"{{"evaluation_interval":{INTERVAL},"delay_evaluation":{DELAY}}}"#);
    let build = || -> Vec<Progress> {
        steps
            .iter()
            .flat_map(|(id, s)| {
                s.iter().filter(|p| p.0 <= step).map(move |p| Progress {
                    trial_id: *id,
                    step: p.0,
                    value: p.1,
                })
            })
            .collect()
    };
    let running = [steps.last().expect("trials").0];
    let t = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(build());
    }
    let build_ms = t.elapsed().as_secs_f64() / reps as f64 * 1e3;
    let history = build();
    // a 0.1 stopper is sent every report up to `step` in each call; a 0.2 instance was sent
    // them once (the first call, untimed) and then only what is new: nothing here
    let time_call = |p: &StrategyPlugin| {
        let mut st = Stopper::new(p.clone());
        for r in &history {
            st.observe(*r);
        }
        st.decide(true, &opts, step, &running).expect("decide");
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(st.decide(true, &opts, step, &running).expect("decide"));
        }
        t.elapsed().as_secs_f64() / reps as f64 * 1e3
    };
    (
        history.len(),
        build_ms,
        nothing.map(time_call),
        time_call(median),
    )
}

/// Mean of the `WINDOW` trials ending at trial `mark` (1-based), in ms.
fn window(v: &[f64], mark: usize) -> Option<f64> {
    if v.len() < mark {
        return None;
    }
    let w = &v[mark.saturating_sub(WINDOW)..mark];
    Some(w.iter().sum::<f64>() / w.len() as f64 * 1e3)
}

fn fmt(v: Option<f64>) -> String {
    match v {
        Some(ms) if ms < 0.1 => format!("{:.1} µs", ms * 1e3),
        Some(ms) => format!("{ms:.3} ms"),
        None => "—".into(),
    }
}

fn plugin(loader: &Arc<Loader>, name: &str, kind: Kind) -> StrategyPlugin {
    let Some(b) = builtin::find(name) else {
        eprintln!(
            "error: the built-in component '{name}' is not in this atrium build; build the \
             plugins (`cargo build --release -p atrium` builds plugins/ and embeds them)"
        );
        std::process::exit(2);
    };
    StrategyPlugin::from_wasm(loader.clone(), b.wasm, kind, name)
        .unwrap_or_else(|e| panic!("cannot load {name}: {e}"))
}

fn peer(python: &Path, trials: usize) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/strategy_peer.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(
            json!({ "trials": trials, "steps": STEPS, "window": WINDOW, "marks": MARKS })
                .to_string(),
        )
        .output()
        .expect("run the Optuna peer");
    assert!(
        out.status.success(),
        "peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("peer output")
}

fn main() {
    let mut python = PathBuf::from("bench/.venv/bin/python");
    let mut trials = 1000usize;
    let mut skip_peer = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--python" => python = args.next().expect("--python PATH").into(),
            "--trials" => trials = args.next().expect("--trials N").parse().expect("N"),
            "--skip-peer" => skip_peer = true,
            other => panic!("unknown argument {other}; use --python PATH --trials N --skip-peer"),
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let engine = Arc::new(PluginEngine::new().expect("plugin engine"));
    let loader =
        Arc::new(Loader::new(engine.clone(), &tmp.path().join("plugins")).expect("loader"));
    let random = plugin(&loader, "sampler-random", Kind::Sampler);
    let tpe = plugin(&loader, "sampler-tpe", Kind::Sampler);
    let median = plugin(&loader, "stop-median", Kind::Stopper);
    // a stopper that stops nothing (test fixture), to tell transfer from the policy's work
    let nothing = std::fs::read(Path::new(builtin::PLUGINS_OUT).join("fx_stopper.wasm"))
        .ok()
        .map(|w| {
            StrategyPlugin::from_wasm(loader.clone(), &w, Kind::Stopper, "fx-stopper")
                .expect("fx_stopper")
        });

    // warm-up: compile and instantiate each component once
    for s in [&random, &tpe] {
        simulate(s, Some(&median), true, 30, 99);
    }

    let mut rows = Vec::new();
    for (sname, sampler) in [("random", &random), ("tpe", &tpe)] {
        let mut stoppers = vec![("", None), ("+median", Some(&median))];
        // the floor of the stop-decision contract: the same calls and history, no policy work
        if sname == "random"
            && let Some(n) = nothing.as_ref()
        {
            stoppers.push(("+no-op stopper", Some(n)));
        }
        for (stop_name, stopper) in stoppers {
            for snapshots in [true, false] {
                if stop_name == "+no-op stopper" && !snapshots {
                    continue;
                }
                let start = Instant::now();
                let o = simulate(sampler, stopper, snapshots, trials, 0);
                let total = start.elapsed().as_secs_f64();
                let name = format!(
                    "{sname}{stop_name}{}",
                    if snapshots { "" } else { ", no snapshots" }
                );
                eprintln!(
                    "{name}: {trials} trials in {total:.2} s, {} stopped, best {:.4}",
                    o.stopped, o.best
                );
                rows.push((format!("{sname}{stop_name}"), snapshots, o, total));
            }
        }
    }
    let theirs = if skip_peer {
        Value::Null
    } else {
        peer(&python, trials)
    };

    let judged_last = STEPS - 1;
    println!(
        "# sweep strategy overhead per trial (suggest + snapshot + stop decisions at steps \
         {DELAY}..={judged_last} + observe + snapshot), mean of the {WINDOW} trials ending at each \
         mark; {trials} trials; one thread\n"
    );
    print!("| strategy | snapshots |");
    for m in MARKS {
        print!(" atrium @{m} |");
    }
    for m in MARKS {
        print!(" optuna @{m} |");
    }
    println!(" ratio @{} | stopped atrium / optuna |", MARKS[2]);
    println!("|---|---|{}", "---|".repeat(2 * MARKS.len() + 2));
    for (name, snapshots, o, _) in &rows {
        let totals: Vec<f64> = o.per_trial.iter().map(Split::total).collect();
        let p = &theirs[name.as_str()];
        let peer_ms = |m: usize| p["per_trial_ms"][m.to_string()].as_f64();
        print!("| {name} | {} |", if *snapshots { "yes" } else { "no" });
        for m in MARKS {
            print!(" {} |", fmt(window(&totals, m)));
        }
        for m in MARKS {
            print!(
                " {} |",
                if *snapshots {
                    fmt(peer_ms(m))
                } else {
                    "″".into()
                }
            );
        }
        let last = *MARKS.last().unwrap();
        let ratio = match (window(&totals, last), peer_ms(last)) {
            (Some(a), Some(b)) => format!("{:.2}×", a / b),
            _ => "—".into(),
        };
        println!(
            " {ratio} | {} / {} |",
            o.stopped,
            p["stopped"]
                .as_u64()
                .map(|v| v.to_string())
                .unwrap_or("—".into())
        );
    }
    let last = *MARKS.last().unwrap();
    println!(
        "\nwhere the time goes at trial {last} (mean of the last {WINDOW} trials, with snapshots):\n"
    );
    println!("| strategy | suggest | snapshots (2) | stop decisions | observe |");
    println!("|---|---|---|---|---|");
    for (name, snapshots, o, _) in &rows {
        if !*snapshots || o.per_trial.len() < last {
            continue;
        }
        let part = |f: fn(&Split) -> f64| {
            fmt(window(&o.per_trial.iter().map(f).collect::<Vec<_>>(), last))
        };
        println!(
            "| {name} | {} | {} | {} | {} |",
            part(|s| s.suggest),
            part(|s| s.snapshot),
            part(|s| s.decide),
            part(|s| s.observe)
        );
    }
    for name in ["random", "random+median", "tpe", "tpe+median"] {
        let sp = &theirs[name]["split_ms"];
        if sp.is_null() {
            continue;
        }
        println!(
            "| optuna {name} | {} (ask + suggest_*) | — | {} (report + should_prune) | {} (tell) |",
            fmt(sp["ask_suggest"].as_f64()),
            fmt(sp["report_should_prune"].as_f64()),
            fmt(sp["tell"].as_f64())
        );
    }
    if let Some((_, _, o, _)) = rows.iter().find(|r| r.0 == "random+median" && r.1) {
        println!(
            "\none stop decision with the history of the random+median run at its end \
             ({} trials), mean of 20 calls:\n",
            o.steps.len()
        );
        println!(
            "| step | history entries | build history (host) | call, stopper that does nothing | call, stop-median |"
        );
        println!("|---|---|---|---|---|");
        for step in [1, 5, 10, 20] {
            let (n, build, transfer, call) =
                profile_decide(&o.steps, step, &median, nothing.as_ref(), 20);
            println!(
                "| {step} | {n} | {} | {} | {} |",
                fmt(Some(build)),
                fmt(transfer),
                fmt(Some(call))
            );
        }
    }
}
