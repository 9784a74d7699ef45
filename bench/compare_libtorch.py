#!/usr/bin/env python3
"""MammoCL vs LibTorch (PyTorch eager) on DenseNet-121, CPU, float32.

Runs bench_train_step and the same workload in PyTorch (torchvision's densenet121, memory_efficient=False,
no checkpointing, eager, torch.set_num_threads(THREADS), SGD lr 0.01 / momentum 0.9 / weight decay 1e-4,
cross-entropy) for every shape, in interleaved rounds: within a round the two frameworks alternate (the
order flips every round), and every run is its own process, so peak RSS is per process. Each run discards
--warmup steps and reports the median of --steps timed steps; the figure reported is the median over rounds.

The FLOPs are computed analytically from the architecture (conv + linear multiply-adds x 2 for the forward
pass; a training step counts as 3x the forward pass). Peak RSS: ours is VmHWM of bench_train_step, LibTorch's
is getrusage(RUSAGE_SELF).ru_maxrss of its worker process (the Python interpreter and the torch libraries
included: that is what a PyTorch training process occupies).

The environment is passed to both frameworks untouched (OPENBLAS_CORETYPE, OMP_* and the like stay as they are).

  compare_libtorch.py                              measure, print the Markdown table
  compare_libtorch.py --write-baseline bench/baseline.json
  compare_libtorch.py --check bench/baseline.json  exit 1 when a shape's images/s ratio (ours / LibTorch) is
                                                   more than 10% below the recorded one, for every torch version
                                                   measured and recorded (exit 2: cannot check)
  compare_libtorch.py --torch-python /usr/bin/python3 /opt/torch2/bin/python
                                                   one LibTorch column per Python (Debian's 1.13, PyPI's 2.x)
  compare_libtorch.py --flops                      print the analytic FLOP counts and exit
  compare_libtorch.py --verify-flops               compare them with multiply-adds counted by torch hooks
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = REPO / "build-bench" / "bench" / "bench_train_step"

#: The workloads of the issue: name -> (mode, batch, channels, size).
SHAPES = {
    "train_b8_c3_224": ("train", 8, 3, 224),
    "train_b1_c1_512": ("train", 1, 1, 512),
    "forward_b4_c3_224": ("forward", 4, 3, 224),
}
#: LibTorch 1.13, 2 threads, recorded by the issue on this machine kind (images/s); printed for reference.
ISSUE_LIBTORCH_IMAGES_PER_S = {"train_b8_c3_224": 6.5, "train_b1_c1_512": 1.2, "forward_b4_c3_224": 21.0}
PEAK_GFLOPS = 397.0  # fp32 peak of the 2-core machine the issue quotes
#: A run whose CPU time / wall time is below this fraction of its threads shared the cores with other processes.
CONTENDED_FRACTION = 0.8
NUM_CLASSES = 5

# DenseNet-121 (torchvision): growth 32, bottleneck 4*32, 64 initial features, blocks 6-12-24-16, compression 0.5.
GROWTH, BN_SIZE, INIT_FEATURES, BLOCKS = 32, 4, 64, (6, 12, 24, 16)


# ----------------------------------------------------------------------------------------------- FLOPs

def _conv_out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def densenet121_macs(channels: int, size: int, classes: int = NUM_CLASSES) -> dict[str, int]:
    """Multiply-adds of one image's forward pass, by layer kind (convolutions and the classifier only)."""
    macs = {"conv0 7x7": 0, "dense 1x1": 0, "dense 3x3": 0, "transition 1x1": 0, "classifier": 0}
    h = _conv_out(size, 7, 2, 3)
    macs["conv0 7x7"] = h * h * INIT_FEATURES * channels * 49
    h = _conv_out(h, 3, 2, 1)  # max pool
    c = INIT_FEATURES
    for b, layers in enumerate(BLOCKS):
        for _ in range(layers):
            macs["dense 1x1"] += h * h * c * BN_SIZE * GROWTH
            macs["dense 3x3"] += h * h * BN_SIZE * GROWTH * GROWTH * 9
            c += GROWTH
        if b + 1 < len(BLOCKS):
            out = c // 2
            macs["transition 1x1"] += h * h * c * out
            c = out
            h = h // 2  # 2x2 average pool, stride 2, floor
    macs["classifier"] = c * classes
    return macs


def step_gflop(mode: str, batch: int, channels: int, size: int) -> float:
    """GFLOP of one step: 2 x multiply-adds x batch for the forward pass, 3x that for a training step."""
    fwd = 2.0 * sum(densenet121_macs(channels, size).values()) * batch
    return (3.0 if mode == "train" else 1.0) * fwd / 1e9


# ----------------------------------------------------------------------------------------------- torch worker

def torch_worker(shape: str, warmup: int, steps: int, threads: int) -> None:
    """Runs in its own process; prints one JSON line like bench_train_step --json."""
    import resource

    import torch
    import torch.nn as nn
    import torchvision

    mode, batch, channels, size = SHAPES[shape]
    t_setup = time.perf_counter()
    torch.manual_seed(1)
    torch.set_num_threads(threads)
    model = torchvision.models.densenet121(weights=None, num_classes=NUM_CLASSES, memory_efficient=False)
    if channels != 3:
        model.features.conv0 = nn.Conv2d(channels, INIT_FEATURES, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.features.conv0.weight)
    x = torch.randn(batch, channels, size, size)
    y = torch.arange(batch) % NUM_CLASSES
    criterion = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    if mode == "train":
        model.train()
    else:
        model.eval()
    setup_s = time.perf_counter() - t_setup
    rss_after_setup = _proc_status_bytes("VmRSS")

    def cpu_seconds() -> float:
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    totals, phases, cpu_per_wall, losses = [], {"forward": [], "loss": [], "backward": [], "optimizer": []}, [], []
    for s in range(warmup + steps):
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        if mode == "train":
            opt.zero_grad(set_to_none=True)  # = grad_mode::overwrite
            t1 = time.perf_counter()
            logits = model(x)
            tf = time.perf_counter()
            loss = criterion(logits, y)
            tl = time.perf_counter()
            loss.backward()
            tb = time.perf_counter()
            opt.step()
            to = time.perf_counter()
            step = {"forward": tf - t1, "loss": tl - tf, "backward": tb - tl, "optimizer": to - tb}
            loss_value = float(loss.detach())
        else:
            with torch.inference_mode():
                logits = model(x)
            loss_value = float(logits.abs().sum())
            step = {"forward": time.perf_counter() - t0, "loss": 0.0, "backward": 0.0, "optimizer": 0.0}
        total = time.perf_counter() - t0
        cpu = cpu_seconds() - c0
        if s >= warmup:
            totals.append(total)
            cpu_per_wall.append(cpu / total)
            for k, v in step.items():
                phases[k].append(v)
            if mode == "train":
                losses.append(loss_value)
    med = statistics.median(totals)
    out = {
        "framework": "libtorch", "torch_version": torch.__version__, "mode": mode, "batch": batch, "size": size,
        "channels": channels, "classes": NUM_CLASSES, "threads": torch.get_num_threads(), "warmup": warmup,
        "steps": steps, "memory_efficient": False,
        "parameters": sum(p.numel() for p in model.parameters()),
        "images_per_s": batch / med, "median_step_s": med, "step_s": totals,
        "phase_median_s": {k: statistics.median(v) for k, v in phases.items()},
        "cpu_per_wall": statistics.median(cpu_per_wall), "load_average": os.getloadavg()[0], "losses": losses,
        "setup_s": setup_s, "rss_after_setup_bytes": rss_after_setup,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux: KiB
        "vmhwm_bytes": _proc_status_bytes("VmHWM"),
    }
    print(json.dumps(out), flush=True)


def _proc_status_bytes(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def verify_flops(python: str) -> int:
    """Counts multiply-adds with forward hooks on torchvision's model and compares with the formula."""
    code = r"""
import json, sys, torch, torch.nn as nn, torchvision
res = {}
for name, (mode, batch, channels, size) in json.loads(sys.argv[1]).items():
    m = torchvision.models.densenet121(weights=None, num_classes=%d)
    if channels != 3:
        m.features.conv0 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    total = [0]
    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            total[0] += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            total[0] += out.numel() * mod.in_features
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            mod.register_forward_hook(hook)
    m.eval()
    with torch.inference_mode():
        m(torch.zeros(1, channels, size, size))
    res[name] = total[0]
print(json.dumps(res))
""" % NUM_CLASSES
    out = subprocess.run([python, "-c", code, json.dumps(SHAPES)], check=True, capture_output=True, text=True)
    counted = json.loads(out.stdout.strip().splitlines()[-1])
    bad = 0
    for name, (mode, batch, channels, size) in SHAPES.items():
        ours = sum(densenet121_macs(channels, size).values())
        ok = ours == counted[name]
        bad += not ok
        print(f"{name}: analytic {ours:,} multiply-adds per image, torch hooks {counted[name]:,}: "
              f"{'match' if ok else 'MISMATCH'}")
    return 1 if bad else 0


# ----------------------------------------------------------------------------------------------- driver

def last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in output:\n" + text[-2000:])


def run_ours(binary: Path, shape: str, args) -> dict:
    mode, batch, channels, size = SHAPES[shape]
    cmd = [str(binary), "--mode", mode, "--batch", str(batch), "--channels", str(channels), "--size", str(size),
           "--threads", str(args.threads), "--warmup", str(args.warmup), "--steps", str(args.steps), "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return last_json_line(p.stdout)


def run_torch(python: str, shape: str, args) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--torch-worker", shape, "--threads", str(args.threads),
           "--warmup", str(args.warmup), "--steps", str(args.steps)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return last_json_line(p.stdout)


def torch_version(python: str) -> str | None:
    """torch.__version__ of a Python that imports torch and torchvision, else None."""
    if not python or not Path(python).exists():
        return None
    r = subprocess.run([python, "-c", "import torch, torchvision; print(torch.__version__)"], capture_output=True,
                       text=True)
    return r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else None


def find_torch_pythons(requested: list[str] | None) -> list[tuple[str, str]]:
    """(python, torch version) for each --torch-python given (each must import torch and torchvision), or the
    first of this Python and Debian's /usr/bin/python3 that does."""
    if requested:
        found = []
        for py in requested:
            v = torch_version(py)
            if v is None:
                raise SystemExit(f"--torch-python {py}: cannot import torch and torchvision with it")
            found.append((py, v))
        return found
    for py in (sys.executable, "/usr/bin/python3"):
        v = torch_version(py)
        if v is not None:
            return [(py, v)]
    return []


def machine_description() -> dict:
    info = {"cpu": platform.processor() or "unknown", "cores": os.cpu_count(), "isa": "unknown",
            "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
        info["isa"] = "AVX-512" if "avx512f" in flags else "AVX2+FMA" if "avx2" in flags and "fma" in flags else "SSE/AVX"
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            info["memory_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def source_description() -> str:
    """The commit the library headers come from, and whether include/ has uncommitted changes."""
    r = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if r.returncode != 0:
        return "unknown (not a git checkout; pass --source)"
    d = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "include"], capture_output=True,
                       text=True)
    return r.stdout.strip() + (" + uncommitted changes in include/" if d.stdout.strip() else "")


def summarise(shape: str, ours: list[dict], torch_runs: dict[str, list[dict]], peak: float) -> dict:
    """Medians over rounds for ours and for each torch version, and the ratios ours / that torch."""
    mode, batch, channels, size = SHAPES[shape]
    gflop = step_gflop(mode, batch, channels, size)
    s = {"shape": shape, "mode": mode, "batch": batch, "channels": channels, "size": size,
         "gflop_per_step": gflop, "rounds": len(ours)}
    ips = statistics.median(r["images_per_s"] for r in ours)
    s.update(ours_images_per_s=ips, ours_round_images_per_s=[r["images_per_s"] for r in ours],
             ours_gflops=ips / batch * gflop, ours_peak_percent=100.0 * ips / batch * gflop / peak,
             ours_peak_rss_bytes=int(statistics.median(r["peak_rss_bytes"] for r in ours)),
             ours_phase_median_s={k: statistics.median(r["phase_median_s"][k] for r in ours)
                                  for k in ours[0]["phase_median_s"]},
             ours_best_images_per_s=max(r["images_per_s"] for r in ours),
             ours_cpu_per_wall=statistics.median(r["cpu_per_wall"] for r in ours),
             ours_load_average=statistics.median(r["load_average"] for r in ours))
    s["torch"] = {}
    for version, runs in torch_runs.items():
        if not runs:
            continue
        tips = statistics.median(r["images_per_s"] for r in runs)
        trss = int(statistics.median(r["peak_rss_bytes"] for r in runs))
        t = {"images_per_s": tips, "round_images_per_s": [r["images_per_s"] for r in runs],
             "gflops": tips / batch * gflop, "peak_percent": 100.0 * tips / batch * gflop / peak,
             "peak_rss_bytes": trss,
             "phase_median_s": {k: statistics.median(r["phase_median_s"][k] for r in runs)
                                for k in runs[0]["phase_median_s"]},
             "best_images_per_s": max(r["images_per_s"] for r in runs),
             "cpu_per_wall": statistics.median(r["cpu_per_wall"] for r in runs),
             "load_average": statistics.median(r["load_average"] for r in runs),
             "ratio": ips / tips, "rss_ratio": s["ours_peak_rss_bytes"] / trss}
        t["best_round_ratio"] = s["ours_best_images_per_s"] / t["best_images_per_s"]
        s["torch"][version] = t
    return s


def _label(s: dict) -> str:
    mode, batch, channels, size = SHAPES[s["shape"]]
    return f"{mode} {batch}x{channels}x{size}x{size}"


def markdown(summaries: list[dict], peak: float) -> str:
    """One row per shape and torch version: images/s, ratio, GFLOP/s, % of peak, peak RSS and its ratio."""
    mib = 2**20
    head = ("| shape | ours images/s | LibTorch | LibTorch images/s | ratio (ours/LibTorch) | GFLOP/step "
            f"| ours GFLOP/s | ours % of {peak:g} GFLOP/s | LibTorch GFLOP/s | ours peak RSS (MiB) "
            "| LibTorch peak RSS (MiB) | RSS ratio (ours/LibTorch) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in summaries:
        common = (f"| {_label(s)} | {s['ours_images_per_s']:.3f} ")
        tail = f"| {s['gflop_per_step']:.1f} | {s['ours_gflops']:.1f} | {s['ours_peak_percent']:.1f}% "
        if not s["torch"]:
            lines.append(common + "| n/a | n/a | n/a " + tail + f"| n/a | {s['ours_peak_rss_bytes'] / mib:.0f} | n/a | n/a |")
        for version, t in s["torch"].items():
            lines.append(common + f"| {version} | {t['images_per_s']:.3f} | {t['ratio']:.3f} " + tail
                         + f"| {t['gflops']:.1f} | {s['ours_peak_rss_bytes'] / mib:.0f} "
                         + f"| {t['peak_rss_bytes'] / mib:.0f} | {t['rss_ratio']:.2f} |")
    return "\n".join(lines)


def phase_table(summaries: list[dict]) -> str:
    lines = ["| shape | framework | forward s | loss s | backward s | optimizer s |", "|---|---|---|---|---|---|"]
    for s in summaries:
        rows = [("ours", s["ours_phase_median_s"])] + [(f"LibTorch {v}", t["phase_median_s"]) for v, t in s["torch"].items()]
        for fw, p in rows:
            lines.append(f"| {s['shape']} | {fw} | {p['forward']:.3f} | {p['loss']:.4f} | {p['backward']:.3f} "
                         f"| {p['optimizer']:.4f} |")
    return "\n".join(lines)


def rounds_table(summaries: list[dict]) -> str:
    """Every round's images/s: the spread shows how much other load on the machine moved the figures."""
    lines = ["| shape | framework | images/s per round | best-round ratio (ours/it) | CPU time / wall | 1-min load average |",
             "|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s['shape']} | ours | {', '.join(f'{v:.3f}' for v in s['ours_round_images_per_s'])} | – "
                     f"| {s['ours_cpu_per_wall']:.2f} | {s['ours_load_average']:.2f} |")
        for version, t in s["torch"].items():
            lines.append(f"| {s['shape']} | LibTorch {version} | {', '.join(f'{v:.3f}' for v in t['round_images_per_s'])} "
                         f"| {t['best_round_ratio']:.3f} | {t['cpu_per_wall']:.2f} | {t['load_average']:.2f} |")
    return "\n".join(lines)


def check(summaries: list[dict], baseline_file: Path, tolerance: float) -> int:
    """Exit status 1 when a (shape, torch version) ratio recorded in the baseline fell by more than tolerance;
    2 when none of the recorded torch versions was measured."""
    base = json.loads(baseline_file.read_text())
    recorded = {s["shape"]: s.get("torch", {}) for s in base["shapes"]}
    status, compared = 0, 0
    for s in summaries:
        for version, r in recorded.get(s["shape"], {}).items():
            if version not in s["torch"]:
                print(f"check {s['shape']} vs torch {version}: not measured in this run; skipped")
                continue
            floor = (1.0 - tolerance) * r["ratio"]
            got = s["torch"][version]["ratio"]
            ok = got >= floor
            compared += 1
            print(f"check {s['shape']} vs torch {version}: ratio {got:.3f}, recorded {r['ratio']:.3f}, "
                  f"floor {floor:.3f}: {'ok' if ok else 'REGRESSION'}")
            if not ok:
                status = 1
    if compared == 0:
        print(f"check: none of the torch versions recorded in {baseline_file} was measured; cannot compare ratios")
        return 2
    return status


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", type=Path, default=DEFAULT_BINARY, help="bench_train_step (default: %(default)s)")
    ap.add_argument("--torch-python", nargs="+", metavar="PYTHON",
                    help="Pythons with torch and torchvision, one LibTorch column each, e.g. /usr/bin/python3 (Debian's "
                         "1.13) and a venv with PyPI's torch 2.x (default: this one, else /usr/bin/python3)")
    ap.add_argument("--no-torch", action="store_true", help="measure ours only")
    ap.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default %(default)s)")
    ap.add_argument("--warmup", type=int, default=1, help="discarded steps per run (default %(default)s)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per run, >= 5 (default %(default)s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peak-gflops", type=float, default=PEAK_GFLOPS, help="fp32 peak for the %% column (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    ap.add_argument("--source", help="what the binary was built from, for the record (default: the git commit)")
    ap.add_argument("--json-out", type=Path, help="write every run and the summaries to this file")
    ap.add_argument("--write-baseline", type=Path, help="record the summaries as the baseline for --check")
    ap.add_argument("--check", type=Path, help="compare the ratios with a recorded baseline")
    ap.add_argument("--tolerance", type=float, default=0.10, help="allowed relative drop of the ratio (default %(default)s)")
    ap.add_argument("--flops", action="store_true", help="print the analytic FLOP counts and exit")
    ap.add_argument("--verify-flops", action="store_true", help="check the analytic counts against torch hooks and exit")
    ap.add_argument("--torch-worker", metavar="SHAPE", choices=list(SHAPES), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.torch_worker:
        torch_worker(args.torch_worker, args.warmup, args.steps, args.threads)
        return 0
    if args.flops:
        for name, (mode, batch, channels, size) in SHAPES.items():
            macs = densenet121_macs(channels, size)
            parts = ", ".join(f"{k} {v / 1e9:.3f}" for k, v in macs.items())
            print(f"{name}: {sum(macs.values()) / 1e9:.4f} GMAC per image forward ({parts}); "
                  f"{step_gflop(mode, batch, channels, size):.2f} GFLOP per {mode} step of batch {batch}")
        return 0
    if args.steps < 5:
        ap.error("--steps must be >= 5 (medians over at least 5 steps after warm-up)")
    if args.rounds < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("--rounds and --threads must be >= 1, --warmup >= 0")
    pythons = [] if args.no_torch else find_torch_pythons(args.torch_python)
    python = pythons[0][0] if pythons else None
    if args.verify_flops:
        if python is None:
            print("--verify-flops needs torch and torchvision", file=sys.stderr)
            return 2
        return verify_flops(python)
    if not args.binary.exists():
        ap.error(f"{args.binary} does not exist; build it: cmake --build build-bench --target bench_train_step")
    if python is None and not args.no_torch:
        print("torch/torchvision not importable: measuring ours only", file=sys.stderr)

    machine = machine_description()
    frameworks = ["ours"] + [f"torch {v}" for _, v in pythons]
    runs = {s: {fw: [] for fw in frameworks} for s in args.shapes}
    for rnd in range(args.rounds):
        for shape in args.shapes:
            order = frameworks if rnd % 2 == 0 else frameworks[::-1]
            for fw in order:
                if fw == "ours":
                    r = run_ours(args.binary, shape, args)
                else:
                    py = next(p for p, v in pythons if f"torch {v}" == fw)
                    r = run_torch(py, shape, args)
                runs[shape][fw].append(r)
                print(f"round {rnd + 1}/{args.rounds} {shape} {fw}: {r['images_per_s']:.3f} images/s, "
                      f"peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB, CPU/wall {r['cpu_per_wall']:.2f}, "
                      f"load {r['load_average']:.2f}", file=sys.stderr, flush=True)

    summaries = [summarise(s, runs[s]["ours"], {v: runs[s][f"torch {v}"] for _, v in pythons}, args.peak_gflops)
                 for s in args.shapes]
    date = datetime.date.today().isoformat()
    source = args.source or source_description()
    print(f"DenseNet-121, float32, {args.threads} threads, {date}, source {source}, {machine['cpu']} "
          f"({machine['cores']} cores, {machine['isa']}), {args.rounds} rounds x {args.steps} steps after "
          f"{args.warmup} warm-up")
    contended = sorted({f"{r['cpu_per_wall']:.2f}" for sr in runs.values() for fw in sr.values() for r in fw
                        if r["cpu_per_wall"] < CONTENDED_FRACTION * args.threads})
    if contended:
        print(f"WARNING: the machine was contended: CPU time / wall time fell to {', '.join(contended)} with "
              f"{args.threads} threads (other processes held the cores). Every parallel region then waits for a "
              "descheduled thread, so the figures measure the scheduler as much as the code; compare the "
              "per-round spread below and rerun on a quiet machine.")
    print()
    print(markdown(summaries, args.peak_gflops))
    print()
    print(phase_table(summaries))
    print()
    print(rounds_table(summaries))
    record = {"date": date, "source": source, "contended": bool(contended), "machine": machine, "threads": args.threads,
              "rounds": args.rounds, "warmup": args.warmup, "steps": args.steps, "peak_gflops": args.peak_gflops,
              "issue_libtorch_images_per_s": ISSUE_LIBTORCH_IMAGES_PER_S, "shapes": summaries}
    if args.json_out:
        args.json_out.write_text(json.dumps({**record, "runs": runs}, indent=1) + "\n")
    if args.write_baseline:
        args.write_baseline.write_text(json.dumps(record, indent=1) + "\n")
    if args.check:
        return check(summaries, args.check, args.tolerance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
