#!/usr/bin/env python3
"""MammoCL vs PyTorch on the SupCon workloads of issue 3, CPU, float32.

Workloads (name -> what one timed call is):
  loss_norm_b256   SupCon value + gradient of features (256, 2, 128), labels b mod 5, tau 0.1, raw features
                   L2-normalised inside (PyTorch: F.normalize, the loss, backward to the raw features)
  loss_unit_b256   the same on rows already of unit norm (no normalisation in the graph)
  step_b32_s64     one SupContr stage-1 step: small DenseNet (growth 8, bn_size 2, 16 initial features,
                   blocks 2-3-4, 1 input channel) on 32 samples x 2 views of 64x64 (BN over both views),
                   MLP projector (feature width -> feature width -> 128), SupCon with normalisation,
                   backward, SGD (lr 0.05, momentum 0.9, weight decay 1e-4)
  step_b16_s128    the same step on 16 samples x 2 views of 128x128

PyTorch side: torchvision.models.DenseNet(growth_rate=8, block_config=(2, 3, 4), num_init_features=16,
bn_size=2, num_classes=5) with conv0 replaced by a 1-channel convolution, its `features` plus ReLU and
global average pooling as the encoder (what its forward does before the classifier), the projector
Sequential(Linear, ReLU, Linear), eager mode, float32, torch.set_num_threads(THREADS). The SupCon loss is
written below from the formula of HobbitLong/SupContrast losses.py (METHOD.md §4.2).

Every run is its own process; within a round the two frameworks alternate, the order flipping every round.
Each run discards --warmup calls and reports the median of --steps timed calls; the figure reported is the
median over rounds. A run whose CPU time / wall time is below 0.8 x threads shared the cores with other
processes and is flagged. Peak RSS: ours is VmHWM of bench_supcon, PyTorch's is ru_maxrss of its worker
(the interpreter and the torch libraries included).

  compare_supcon.py                           measure, print the Markdown tables
  compare_supcon.py --check-values            write features + labels to a file, run both losses on them
                                              (raw and unit rows), compare loss values and gradients; exit 1
                                              when the losses differ by more than 1e-5 (relative)
  compare_supcon.py --json-out FILE           also write every run and the summaries as JSON
  compare_supcon.py --torch-blas-dir DIR      also run PyTorch with the libblas.so.3 in DIR (a third column,
                                              interleaved with the others): Debian's torch 1.13 calls the
                                              reference (netlib) BLAS for aten::mm, and an optimised BLAS
                                              changes the loss figures by an order of magnitude. E.g. OpenBLAS
                                              unpacked, not installed: apt-get download libopenblas0-pthread;
                                              dpkg -x libopenblas0-pthread_*.deb /tmp/ob; DIR =
                                              /tmp/ob/usr/lib/x86_64-linux-gnu/openblas-pthread
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = REPO / "build-bench" / "bench" / "bench_supcon"
TORCH_PYTHON = "/usr/bin/python3"

#: name -> (workload, samples, size or None, normalize)
WORKLOADS = {
    "loss_norm_b256": ("loss", 256, None, True),
    "loss_unit_b256": ("loss", 256, None, False),
    "step_b32_s64": ("step", 32, 64, True),
    "step_b16_s128": ("step", 16, 128, True),
}
VIEWS, DIM, CLASSES, TAU = 2, 128, 5, 0.1
CONTENDED_FRACTION = 0.8
DEFAULT_STEPS = {"loss": 20, "step": 7}
DEFAULT_WARMUP = {"loss": 3, "step": 2}


# ----------------------------------------------------------------------------------------------- torch side

def supcon_loss(features, labels, temperature=TAU, base_temperature=TAU):
    """SupCon of features (B, V, D) with labels (B,), all views as anchors (losses.py contrast_mode 'all').

    Anchors and contrasts are the V·B rows ordered view-major. For anchor i: logits s_ij = z_i·z_j / tau,
    shifted by their row maximum (self included), log-probabilities over j != i, averaged over the
    positives j != i with the same label (denominator 1 when there are none), scaled by -tau/tau_b, and
    averaged over all anchors.
    """
    import torch

    b, v = features.shape[0], features.shape[1]
    z = features.transpose(0, 1).reshape(v * b, -1)           # view-major rows
    n = v * b
    same = (labels.view(-1, 1) == labels.view(1, -1)).to(z.dtype).repeat(v, v)
    not_self = 1.0 - torch.eye(n, dtype=z.dtype)
    pos = same * not_self
    s = z @ z.T / temperature
    s = s - s.max(dim=1, keepdim=True).values.detach()
    log_den = torch.log((torch.exp(s) * not_self).sum(dim=1, keepdim=True))
    log_prob = s - log_den
    npos = pos.sum(dim=1)
    npos = torch.where(npos < 1e-6, torch.ones_like(npos), npos)
    per_anchor = -(temperature / base_temperature) * (pos * log_prob).sum(dim=1) / npos
    return per_anchor.mean()


def _proc_status_bytes(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def blas_library() -> str:
    """The BLAS shared object this process mapped (which libblas.so.3 torch resolved)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "blas" in path and ".so" in path:
                    return os.path.realpath(path)
    except OSError:
        pass
    return "unknown"


def torch_worker(name: str, warmup: int, steps: int, threads: int) -> None:
    """Runs in its own process; prints one JSON line shaped like bench_supcon --json."""
    import resource

    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision

    torch.set_num_threads(threads)
    torch.manual_seed(1)
    kind, samples, size, normalize = WORKLOADS[name]

    def cpu_seconds() -> float:
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    labels = torch.arange(samples) % CLASSES
    out = {"framework": "pytorch", "torch_version": torch.__version__, "workload": kind, "batch": samples,
           "views": VIEWS, "dim": DIM, "classes": CLASSES, "threads": torch.get_num_threads(), "warmup": warmup,
           "steps": steps}
    if kind == "loss":
        raw = torch.randn(samples, VIEWS, DIM)
        base = raw if normalize else F.normalize(raw, dim=2)

        def call() -> float:
            f = base.clone().requires_grad_(True)
            z = F.normalize(f, dim=2) if normalize else f
            loss = supcon_loss(z, labels)
            loss.backward()
            return float(loss.detach())
        out["normalize"] = normalize
    else:
        model = torchvision.models.DenseNet(growth_rate=8, block_config=(2, 3, 4), num_init_features=16, bn_size=2,
                                            num_classes=CLASSES)
        model.features.conv0 = nn.Conv2d(1, 16, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.features.conv0.weight)
        width = model.classifier.in_features
        projector = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, DIM))
        encoder = model.features
        params = list(encoder.parameters()) + list(projector.parameters())
        opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-4)
        model.train()
        projector.train()
        x = torch.rand(VIEWS * samples, 1, size, size)  # view-major: view 0 of every sample, then view 1

        def call() -> float:
            opt.zero_grad(set_to_none=True)
            h = F.relu(encoder(x), inplace=True)
            feat = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
            p = F.normalize(projector(feat), dim=1)
            z = torch.stack(torch.split(p, samples, dim=0), dim=1)  # (B, V, D)
            loss = supcon_loss(z, labels)
            loss.backward()
            opt.step()
            return float(loss.detach())
        out.update(size=size, feature_dim=width,
                   encoder_parameters=sum(p.numel() for p in encoder.parameters()),
                   projector_parameters=sum(p.numel() for p in projector.parameters()))

    walls, cpw, values = [], [], []
    for s in range(warmup + steps):
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        v = call()
        w = time.perf_counter() - t0
        c = cpu_seconds() - c0
        if s >= warmup:
            walls.append(w)
            cpw.append(c / w)
            values.append(v)
    med = statistics.median(walls)
    out.update(blas=blas_library(), median_s=med, call_s=walls, cpu_per_wall=statistics.median(cpw), load_average=os.getloadavg()[0],
               peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
               vmhwm_bytes=_proc_status_bytes("VmHWM"))
    if kind == "loss":
        out["loss"] = values[-1]
    else:
        out["losses"] = values
        out["images_per_s"] = VIEWS * samples / med
    print(json.dumps(out), flush=True)


def torch_values(path_in: str, path_out: str, normalize: bool) -> None:
    """Check mode worker: the loss and gradient of the features in path_in, in float32 and float64."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    with open(path_in, "rb") as f:
        assert f.read(4) == b"SCV1"
        b, v, d = struct.unpack("<3i", f.read(12))
        labels = torch.tensor(np.frombuffer(f.read(4 * b), dtype="<i4").astype(np.int64))
        feats = torch.tensor(np.frombuffer(f.read(4 * b * v * d), dtype="<f4").reshape(b, v, d).copy())
    res = {"torch_version": torch.__version__}
    for dtype in (torch.float32, torch.float64):
        f = feats.detach().to(dtype).clone().requires_grad_(True)
        loss = supcon_loss(F.normalize(f, dim=2) if normalize else f, labels)
        loss.backward()
        key = "f32" if dtype == torch.float32 else "f64"
        res[f"loss_{key}"] = float(loss.detach())
        if dtype == torch.float32:
            f.grad.numpy().astype("<f4").tofile(path_out)
        else:
            f.grad.numpy().astype("<f8").tofile(path_out + ".f64")
    print(json.dumps(res), flush=True)


# ----------------------------------------------------------------------------------------------- driver

def last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in output:\n" + text[-2000:])


def _run(cmd: list[str], timeout: float, env: dict | None = None) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return last_json_line(p.stdout)


def run_ours(binary: Path, name: str, args, warmup: int, steps: int) -> dict:
    kind, samples, size, normalize = WORKLOADS[name]
    cmd = [str(binary), "--workload", kind, "--batch", str(samples), "--dim", str(DIM), "--classes", str(CLASSES),
           "--threads", str(args.threads), "--warmup", str(warmup), "--steps", str(steps), "--json"]
    cmd += ["--normalize" if normalize else "--unit"]
    if size:
        cmd += ["--size", str(size)]
    return _run(cmd, args.timeout)


def run_torch(python: str, name: str, args, warmup: int, steps: int, blas_dir: str | None = None) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--torch-worker", name, "--threads", str(args.threads),
           "--warmup", str(warmup), "--steps", str(steps)]
    env = None
    if blas_dir:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = blas_dir + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        env["OPENBLAS_NUM_THREADS"] = str(args.threads)
    return _run(cmd, args.timeout, env)


def check_values(binary: Path, python: str, seed: int) -> int:
    """Both losses on the same features (raw, and rows of unit norm); exit 1 beyond 1e-5."""
    import random

    rnd = random.Random(seed)
    b, v, d = 256, VIEWS, DIM
    labels = [rnd.randrange(CLASSES) for _ in range(b)]
    raw = [rnd.gauss(0.0, 1.0) for _ in range(b * v * d)]
    unit = []
    for r in range(b * v):
        row = raw[r * d:(r + 1) * d]
        norm = sum(x * x for x in row) ** 0.5
        unit += [x / norm for x in row]
    status = 0
    with tempfile.TemporaryDirectory(prefix="supcon-values-") as tmp:
        for label, feats, normalize in (("raw features, normalised inside", raw, True),
                                        ("unit-norm rows", unit, False)):
            fin = os.path.join(tmp, "features.bin")
            with open(fin, "wb") as f:
                f.write(b"SCV1" + struct.pack("<3i", b, v, d) + struct.pack(f"<{b}i", *labels)
                        + struct.pack(f"<{b * v * d}f", *feats))
            flag = "--normalize" if normalize else "--unit"
            ours = _run([str(binary), "--values-in", fin, "--values-out", os.path.join(tmp, "ours.grad"), flag], 600)
            theirs = _run([python, str(Path(__file__).resolve()), "--torch-values", fin,
                           os.path.join(tmp, "torch.grad"), flag], 600)
            n = b * v * d
            with open(os.path.join(tmp, "ours.grad"), "rb") as f:
                g_ours = struct.unpack(f"<{n}f", f.read())
            with open(os.path.join(tmp, "torch.grad"), "rb") as f:
                g_t32 = struct.unpack(f"<{n}f", f.read())
            with open(os.path.join(tmp, "torch.grad.f64"), "rb") as f:
                g_t64 = struct.unpack(f"<{n}d", f.read())
            scale = max(abs(x) for x in g_t64)
            d32 = max(abs(a - c) for a, c in zip(g_ours, g_t32)) / scale
            d64 = max(abs(a - c) for a, c in zip(g_ours, g_t64)) / scale
            t32 = max(abs(a - c) for a, c in zip(g_t32, g_t64)) / scale
            rel32 = abs(ours["loss"] - theirs["loss_f32"]) / abs(theirs["loss_f64"])
            rel64 = abs(ours["loss"] - theirs["loss_f64"]) / abs(theirs["loss_f64"])
            ok = rel32 <= 1e-5 and rel64 <= 1e-5
            status |= 0 if ok else 1
            print(f"{label}: loss ours {ours['loss']:.9f}, PyTorch float32 {theirs['loss_f32']:.9f}, "
                  f"float64 {theirs['loss_f64']:.12f}; relative difference {rel32:.2e} (vs float32), "
                  f"{rel64:.2e} (vs float64): {'ok' if ok else 'MISMATCH'}")
            print(f"  gradient: max |ours - PyTorch| / max |grad| = {d32:.2e} (float32), {d64:.2e} (float64); "
                  f"PyTorch float32 vs float64 {t32:.2e}; max |grad| {scale:.3e}")
    return status


def find_torch_python(requested: str | None) -> str | None:
    for py in ([requested] if requested else [sys.executable, TORCH_PYTHON]):
        if py and Path(py).exists():
            r = subprocess.run([py, "-c", "import torch, torchvision"], capture_output=True, text=True)
            if r.returncode == 0:
                return py
    return None


def machine_description() -> dict:
    info = {"cpu": platform.processor() or "unknown", "cores": os.cpu_count(), "isa": "unknown"}
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
    return info


def summarise(name: str, ours: list[dict], theirs: list[dict], blas_runs: list[dict]) -> dict:
    kind, samples, size, _ = WORKLOADS[name]
    s = {"workload": name, "kind": kind, "rounds": len(ours),
         "ours_median_s": statistics.median(r["median_s"] for r in ours),
         "ours_round_s": [r["median_s"] for r in ours],
         "ours_cpu_per_wall": statistics.median(r["cpu_per_wall"] for r in ours),
         "ours_peak_rss_bytes": int(statistics.median(r["peak_rss_bytes"] for r in ours)),
         "ours_load_average": statistics.median(r["load_average"] for r in ours)}
    if kind == "step":
        s["ours_images_per_s"] = VIEWS * samples / s["ours_median_s"]
        s["ours_loss_alone_s"] = statistics.median(r["loss_alone_s"] for r in ours)
    if theirs:
        s.update(torch_version=theirs[0]["torch_version"],
                 torch_median_s=statistics.median(r["median_s"] for r in theirs),
                 torch_round_s=[r["median_s"] for r in theirs],
                 torch_cpu_per_wall=statistics.median(r["cpu_per_wall"] for r in theirs),
                 torch_peak_rss_bytes=int(statistics.median(r["peak_rss_bytes"] for r in theirs)),
                 torch_load_average=statistics.median(r["load_average"] for r in theirs))
        s["time_ratio"] = s["ours_median_s"] / s["torch_median_s"]
        s["rss_ratio"] = s["ours_peak_rss_bytes"] / s["torch_peak_rss_bytes"]
        if kind == "step":
            s["torch_images_per_s"] = VIEWS * samples / s["torch_median_s"]
            s["images_per_s_ratio"] = s["ours_images_per_s"] / s["torch_images_per_s"]
        s["torch_blas"] = theirs[0].get("blas", "unknown")
    if blas_runs:
        s.update(tblas_median_s=statistics.median(r["median_s"] for r in blas_runs),
                 tblas_round_s=[r["median_s"] for r in blas_runs],
                 tblas_cpu_per_wall=statistics.median(r["cpu_per_wall"] for r in blas_runs),
                 tblas_peak_rss_bytes=int(statistics.median(r["peak_rss_bytes"] for r in blas_runs)),
                 tblas_blas=blas_runs[0].get("blas", "unknown"))
        s["tblas_time_ratio"] = s["ours_median_s"] / s["tblas_median_s"]
        if kind == "step":
            s["tblas_images_per_s"] = VIEWS * samples / s["tblas_median_s"]
    return s


def label(name: str) -> str:
    kind, samples, size, normalize = WORKLOADS[name]
    if kind == "loss":
        return f"loss ({samples},{VIEWS},{DIM}) {'normalised inside' if normalize else 'unit rows'}"
    return f"step {samples}x{VIEWS} views {size}x{size}"


def markdown(summaries: list[dict]) -> str:
    mib = 2**20
    lines = ["| workload | ours ms | PyTorch ms | time ratio (ours/PyTorch) | ours images/s | PyTorch images/s "
             "| images/s ratio | ours peak RSS (MiB) | PyTorch peak RSS (MiB) |", "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        t = "torch_median_s" in s
        step = s["kind"] == "step"
        cells = [label(s["workload"]), f"{1e3 * s['ours_median_s']:.2f}",
                 f"{1e3 * s['torch_median_s']:.2f}" if t else "n/a", f"{s['time_ratio']:.2f}" if t else "n/a",
                 f"{s['ours_images_per_s']:.0f}" if step else "-",
                 f"{s['torch_images_per_s']:.0f}" if step and t else "-",
                 f"{s['images_per_s_ratio']:.2f}" if step and t else "-",
                 f"{s['ours_peak_rss_bytes'] / mib:.0f}", f"{s['torch_peak_rss_bytes'] / mib:.0f}" if t else "n/a"]
        lines.append("| " + " | ".join(cells) + " |")
    if any("tblas_median_s" in s for s in summaries):
        lines += ["", "PyTorch with the BLAS of --torch-blas-dir (" + summaries[0].get("tblas_blas", "?") + "):", "",
                  "| workload | ours ms | PyTorch + that BLAS ms | time ratio (ours/PyTorch) | images/s ratio "
                  "| PyTorch peak RSS (MiB) |", "|---|---|---|---|---|---|"]
        for s in summaries:
            if "tblas_median_s" not in s:
                continue
            ipr = f"{s['ours_images_per_s'] / s['tblas_images_per_s']:.2f}" if s["kind"] == "step" else "-"
            lines.append(f"| {label(s['workload'])} | {1e3 * s['ours_median_s']:.2f} | {1e3 * s['tblas_median_s']:.2f} "
                         f"| {s['tblas_time_ratio']:.2f} | {ipr} | {s['tblas_peak_rss_bytes'] / mib:.0f} |")
    return "\n".join(lines)


def rounds_table(summaries: list[dict]) -> str:
    lines = ["| workload | ours ms per round | PyTorch ms per round | PyTorch + --torch-blas-dir ms per round "
             "| CPU/wall ours / PyTorch / PyTorch + BLAS | load ours / PyTorch |", "|---|---|---|---|---|---|"]
    for s in summaries:
        o = ", ".join(f"{1e3 * v:.2f}" for v in s["ours_round_s"])
        t = ", ".join(f"{1e3 * v:.2f}" for v in s.get("torch_round_s", [])) or "n/a"
        b = ", ".join(f"{1e3 * v:.2f}" for v in s.get("tblas_round_s", [])) or "n/a"
        lines.append(f"| {s['workload']} | {o} | {t} | {b} | {s['ours_cpu_per_wall']:.2f} / "
                     f"{s.get('torch_cpu_per_wall', float('nan')):.2f} / {s.get('tblas_cpu_per_wall', float('nan')):.2f} "
                     f"| {s['ours_load_average']:.2f} / {s.get('torch_load_average', float('nan')):.2f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", type=Path, default=DEFAULT_BINARY, help="bench_supcon (default: %(default)s)")
    ap.add_argument("--torch-python", help=f"a Python with torch and torchvision (default: this one, else {TORCH_PYTHON})")
    ap.add_argument("--no-torch", action="store_true", help="measure ours only")
    ap.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default %(default)s)")
    ap.add_argument("--warmup", type=int, help="discarded calls per run (default: 3 for the loss, 2 for the step)")
    ap.add_argument("--steps", type=int, help="timed calls per run, >= 5 (default: 20 for the loss, 7 for the step)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--torch-blas-dir", help="also run PyTorch with LD_LIBRARY_PATH=DIR (a libblas.so.3 there)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    ap.add_argument("--json-out", type=Path, help="write every run and the summaries to this file")
    ap.add_argument("--check-values", action="store_true", help="compare the two losses on the same input and exit")
    ap.add_argument("--seed", type=int, default=3, help="--check-values input seed")
    ap.add_argument("--torch-worker", metavar="WORKLOAD", choices=list(WORKLOADS), help=argparse.SUPPRESS)
    ap.add_argument("--torch-values", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--normalize", dest="normalize", action="store_true", default=True, help=argparse.SUPPRESS)
    ap.add_argument("--unit", dest="normalize", action="store_false", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.torch_worker:
        kind = WORKLOADS[args.torch_worker][0]
        torch_worker(args.torch_worker, DEFAULT_WARMUP[kind] if args.warmup is None else args.warmup,
                     DEFAULT_STEPS[kind] if args.steps is None else args.steps, args.threads)
        return 0
    if args.torch_values:
        torch_values(args.torch_values[0], args.torch_values[1], args.normalize)
        return 0
    if args.steps is not None and args.steps < 5:
        ap.error("--steps must be >= 5 (medians over at least 5 calls after warm-up)")
    if args.rounds < 1 or args.threads < 1 or (args.warmup is not None and args.warmup < 0):
        ap.error("--rounds and --threads must be >= 1, --warmup >= 0")
    if not args.binary.exists():
        ap.error(f"{args.binary} does not exist; build it: cmake --build build-bench --target bench_supcon")
    python = None if args.no_torch else find_torch_python(args.torch_python)
    if python is None and not args.no_torch:
        print("torch/torchvision not importable: measuring ours only", file=sys.stderr)
    if args.check_values:
        if python is None:
            print("--check-values needs torch", file=sys.stderr)
            return 2
        return check_values(args.binary, python, args.seed)

    if args.torch_blas_dir and not (Path(args.torch_blas_dir) / "libblas.so.3").exists():
        ap.error(f"--torch-blas-dir: {args.torch_blas_dir}/libblas.so.3 does not exist")
    runs = {w: {"ours": [], "torch": [], "torch_blas": []} for w in args.workloads}
    for rnd in range(args.rounds):
        for w in args.workloads:
            kind = WORKLOADS[w][0]
            warmup = DEFAULT_WARMUP[kind] if args.warmup is None else args.warmup
            steps = DEFAULT_STEPS[kind] if args.steps is None else args.steps
            order = ["ours", "torch", "torch_blas"]
            for fw in (order if rnd % 2 == 0 else order[::-1]):
                if fw != "ours" and (python is None or (fw == "torch_blas" and not args.torch_blas_dir)):
                    continue
                if fw == "ours":
                    r = run_ours(args.binary, w, args, warmup, steps)
                else:
                    r = run_torch(python, w, args, warmup, steps, args.torch_blas_dir if fw == "torch_blas" else None)
                runs[w][fw].append(r)
                print(f"round {rnd + 1}/{args.rounds} {w} {fw:10s}: {1e3 * r['median_s']:.2f} ms, "
                      f"peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB, CPU/wall {r['cpu_per_wall']:.2f}, "
                      f"load {r['load_average']:.2f}", file=sys.stderr, flush=True)

    summaries = [summarise(w, runs[w]["ours"], runs[w]["torch"], runs[w]["torch_blas"]) for w in args.workloads]
    machine = machine_description()
    version = next((s["torch_version"] for s in summaries if "torch_version" in s), "not measured")
    print(f"SupCon workloads, float32, {args.threads} thread(s), {datetime.date.today().isoformat()}, "
          f"{machine['cpu']} ({machine['cores']} cores, {machine['isa']}), torch {version}, {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.2f} at the end; PyTorch's BLAS: "
          f"{next((s['torch_blas'] for s in summaries if 'torch_blas' in s), 'n/a')}")
    contended = sorted({f"{r['cpu_per_wall']:.2f}" for wr in runs.values() for fr in wr.values() for r in fr
                        if r["cpu_per_wall"] < CONTENDED_FRACTION * args.threads})
    if contended:
        print(f"WARNING: contended runs: CPU time / wall time fell to {', '.join(contended)} with {args.threads} "
              "thread(s): other processes held the cores; compare the per-round spread and rerun on a quiet machine.")
    print()
    print(markdown(summaries))
    print()
    print(rounds_table(summaries))
    for s in summaries:
        if s["kind"] == "step":
            print(f"\n{s['workload']}: the SupCon loss alone at the step's shape takes "
                  f"{1e3 * s['ours_loss_alone_s']:.2f} ms of our {1e3 * s['ours_median_s']:.1f} ms step")
    if args.json_out:
        tmp = args.json_out.with_name(args.json_out.name + ".tmp")
        tmp.write_text(json.dumps({"machine": machine, "threads": args.threads, "rounds": args.rounds,
                                   "contended": bool(contended), "summaries": summaries, "runs": runs}, indent=1) + "\n")
        tmp.replace(args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
