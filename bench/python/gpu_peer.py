"""PyTorch peer of Atrium's GPU benchmark (bench/src/gpu.rs), and the comparison.

  python3 gpu_peer.py train DIR [--device cuda|cpu]   # trains every DIR/<size>.safetensors
  python3 gpu_peer.py compare DIR                     # table from DIR/atrium.json + DIR/torch.json

`train` builds the identical MLP (nn.Linear + ReLU, the weights gpu-bench wrote, transposed to
PyTorch's (out, in) layout), trains it with torch.optim.AdamW (lr 1e-3, weight decay 0.01,
betas (0.9, 0.999), eps 1e-8: Atrium's defaults) on the same batch sequence (step s uses batch
s mod distinct), reads the loss back every step as Atrium's trainer does, and times every step
with the device synchronized before and after. fp32 with TF32 off, unless the file says tf32.
"""

import json
import os
import statistics
import sys
import time

# The loss curves agree when every step's loss a is within REL * |b| of the peer's b, for each
# (STEPS, REL) tier: tight over the first steps (an error in the model, the initialization, the
# data order, the loss or the optimizer shows there at once), looser later, since two correct
# fp32 implementations with different kernels and summation orders drift apart under Adam.
# For the later tier the bound is also at least REF_FACTOR times the drift between PyTorch and
# PyTorch arranged differently (the torch-ref run): on the H200 the 784-4096x3-10 net drifted
# 4.8e-2 from itself within 50 steps, beyond the 5e-3 that CPU runs of smaller nets suggested
# (the first GPU run judged by the fixed 5e-3 alone; see bench/RESULTS.md).
# Steps after the last tier are reported, not judged.
TIERS = [(10, 1e-4), (50, 5e-3)]
REF_FACTOR = 2.0


def train(directory, device):
    import torch
    from safetensors import safe_open

    torch.manual_seed(0)
    results = []
    names = sorted(
        f[: -len(".safetensors")] for f in os.listdir(directory) if f.endswith(".safetensors")
    )
    order = {"small": 0, "medium": 1, "large": 2, "large-tf32": 3}
    names.sort(key=lambda n: order.get(n, 99))
    for name in names:
        path = os.path.join(directory, name + ".safetensors")
        with safe_open(path, framework="pt", device="cpu") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        dims = json.loads(meta["dims"])
        batch, steps, warmup = int(meta["batch"]), int(meta["steps"]), int(meta["warmup"])
        distinct = int(meta["distinct"])
        lr, wd = float(meta["lr"]), float(meta["weight_decay"])
        tf32 = meta.get("tf32") == "true"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")

        for variant in ("torch", "torch-ref"):
            results.append(
                train_one(torch, name, variant, tensors, dims, batch, steps, warmup, distinct,
                          lr, wd, tf32, device)
            )
    doc = {
        "engine": "torch",
        "torch": torch.__version__,
        "device": device,
        "card": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "results": results,
    }
    with open(os.path.join(directory, "torch.json"), "w") as f:
        json.dump(doc, f)


def train_one(torch, name, variant, tensors, dims, batch, steps, warmup, distinct, lr, wd, tf32,
              device):
    """One training run. "torch" is the peer: nn.Linear layers and the default (foreach) AdamW.
    "torch-ref" is the same computation arranged differently, to measure how far two correct
    fp32 implementations drift apart: weights kept (in, out) as Atrium keeps them
    (torch.addmm(b, h, W), another cuBLAS transposition) and the fused AdamW kernel."""
    if variant == "torch":
        layers = []
        for i in range(len(dims) - 1):
            lin = torch.nn.Linear(dims[i], dims[i + 1])
            with torch.no_grad():
                lin.weight.copy_(tensors[f"w{i}"].t())
                lin.bias.copy_(tensors[f"b{i}"])
            layers.append(lin)
            if i < len(dims) - 2:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers).to(device)
        params = list(model.parameters())
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd, betas=(0.9, 0.999), eps=1e-8)
    else:
        ws = [torch.nn.Parameter(tensors[f"w{i}"].clone().to(device)) for i in range(len(dims) - 1)]
        bs = [torch.nn.Parameter(tensors[f"b{i}"].clone().to(device)) for i in range(len(dims) - 1)]

        def model(h):
            for i, (w, b) in enumerate(zip(ws, bs)):
                h = torch.addmm(b, h, w)
                if i < len(ws) - 1:
                    h = torch.relu(h)
            return h

        params = ws + bs
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd, betas=(0.9, 0.999), eps=1e-8,
                                fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    data = [
        (tensors[f"x{k}"].to(device), tensors[f"y{k}"].to(device)) for k in range(distinct)
    ]

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    losses, times = [], []
    sync()
    wall = time.perf_counter()
    for s in range(steps):
        x, y = data[s % distinct]
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
        sync()
        times.append((time.perf_counter() - t) * 1e3)
    wall = time.perf_counter() - wall
    timed = times[warmup:]
    med = statistics.median(timed)
    print(
        f"{variant:<9} {name:<10} batch {batch:>5}: median {med:8.3f} ms/step, first loss "
        f"{losses[0]:.5f}, last {losses[-1]:.5f} ({steps} steps, {wall:.1f} s)",
        file=sys.stderr,
    )
    return {
        "name": name if variant == "torch" else f"{name}/{variant}", "peer": name,
        "variant": variant, "dims": dims, "batch": batch, "steps": steps, "warmup": warmup,
        "tf32": tf32, "median_ms": med, "mean_ms": sum(timed) / len(timed),
        "step_ms": times, "losses": losses, "wall_s": wall,
    }


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def compare(directory):
    with open(os.path.join(directory, "atrium.json")) as f:
        ours = {r["name"]: r for r in json.load(f)["results"]}
    with open(os.path.join(directory, "torch.json")) as f:
        peer_doc = json.load(f)
    theirs = {r["name"]: r for r in peer_doc["results"]}
    rows, ok = [], True
    ref_drift = {}  # peer name -> [max rel drift of torch-ref vs torch per tier]
    for name, b0 in theirs.items():
        r = theirs.get(f"{name}/torch-ref")
        if r is None or b0.get("variant", "torch") != "torch":
            continue
        n = min(len(r["losses"]), len(b0["losses"]))
        ref_drift[name] = [
            max(rel(r["losses"][i], b0["losses"][i]) for i in range(min(n, steps)))
            for steps, _ in TIERS
        ]
    for name, a in ours.items():
        if "error" not in a and name == a.get("peer", name) and name in ref_drift:
            # the drift of two correct fp32 implementations: PyTorch against PyTorch arranged
            # differently (torch-ref), as the yardstick for Atrium against PyTorch
            r, b0 = theirs[f"{name}/torch-ref"], theirs[name]
            n = min(len(r["losses"]), len(b0["losses"]))
            spans = [
                f"{d:.1e} (0-{min(n, steps) - 1})" for d, (steps, _) in zip(ref_drift[name], TIERS)
            ]
            whole = max(rel(r["losses"][i], b0["losses"][i]) for i in range(n))
            rows.append((
                f"{name}/torch-ref", r["batch"], None, r["median_ms"], None,
                f"reference, PyTorch vs PyTorch: max rel {', '.join(spans)}, {whole:.1e} (all {n})",
            ))
        b = theirs.get(a.get("peer", name))
        if "error" in a or b is None:
            why = f"atrium failed: {a['error']}" if "error" in a else "no PyTorch result"
            rows.append((name, a.get("batch", 0), a.get("median_ms"), b and b["median_ms"], None, why))
            ok = False
            continue
        la, lb = a["losses"], b["losses"]
        n = min(len(la), len(lb))
        strict = not a["tf32"]
        agree, spans = True, []
        refs = ref_drift.get(a.get("peer", name))
        for t, (steps, tol) in enumerate(TIERS):
            k = min(n, steps)
            worst = max(rel(la[i], lb[i]) for i in range(k))
            bound = tol if t == 0 or refs is None else max(tol, REF_FACTOR * refs[t])
            agree = agree and worst <= bound
            spans.append(f"{worst:.1e} (0-{k - 1}, bound {bound:.1e})")
        whole = max(rel(la[i], lb[i]) for i in range(n))
        if strict and not agree:
            ok = False
        verdict = "ok" if agree else ("FAIL" if strict else "differs (tf32)")
        note = (
            f"{verdict}: max rel {', '.join(spans)}, {whole:.1e} (all {n}); "
            f"final {la[n - 1]:.4f} vs {lb[n - 1]:.4f}"
        )
        rows.append((name, a["batch"], a["median_ms"], b["median_ms"], a["median_ms"] / b["median_ms"], note))
    print(f"card: {peer_doc.get('card')}, torch {peer_doc.get('torch')}, device {peer_doc.get('device')}")
    print(
        "loss agreement: max over steps of |atrium - torch| / |torch| <= "
        + ", ".join(
            f"{tol:g} over the first {steps} steps" + ("" if t == 0 else
            f" (or {REF_FACTOR:g}x the PyTorch-vs-PyTorch drift there, if larger)")
            for t, (steps, tol) in enumerate(TIERS)
        )
        + "; fp32 sizes judged, tf32 reported only"
    )
    print("torch-ref rows: PyTorch (addmm on (in, out) weights, fused AdamW) against the PyTorch peer; "
          "their PyTorch column is that variant's time")
    hdr = f"| {'size':<40} | {'batch':>5} | {'Atrium ms/step':>14} | {'PyTorch ms/step':>15} | {'ratio':>6} | loss agreement"
    print(hdr)
    print("|" + "-" * 42 + "|" + "-" * 7 + "|" + "-" * 16 + "|" + "-" * 17 + "|" + "-" * 8 + "|" + "-" * 20)
    for name, batch, am, bm, ratio, note in rows:
        dims = "-".join(str(d) for d in ours.get(name, {}).get("dims", []))
        label = f"{name} {dims}"
        ams = f"{am:.3f}" if am is not None else "-"
        bms = f"{bm:.3f}" if bm is not None else "-"
        rs = f"{ratio:.2f}x" if ratio is not None else "-"
        print(f"| {label:<40} | {batch:>5} | {ams:>14} | {bms:>15} | {rs:>6} | {note}")
    print("loss curves: " + ("agree" if ok else "DO NOT AGREE"))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("train", "compare"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    if sys.argv[1] == "train":
        dev = "cuda"
        if "--device" in sys.argv:
            dev = sys.argv[sys.argv.index("--device") + 1]
        train(sys.argv[2], dev)
    else:
        sys.exit(compare(sys.argv[2]))
