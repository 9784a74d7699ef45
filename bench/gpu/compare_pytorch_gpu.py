#!/usr/bin/env python3
"""MammoCL's CUDA backend next to PyTorch eager on the same GPU, in the same run: DenseNet-121 training step
(forward, cross-entropy, backward, SGD momentum 0.9, weight decay 1e-4) and forward pass.

Every measurement runs in a fresh process, so that neither framework inherits the other's allocator, cuDNN
autotuning or clocks. Per configuration and round the script runs: ours (bench_train_step_gpu, exact float32),
PyTorch with its default TF32 flags, PyTorch with TF32 off; the order flips every round (ours first on even
rounds, last on odd ones) so that a warming or throttling GPU does not favour one side. Each process reports
the median of its timed steps; the script reports the median over rounds, the peak memory (ours: the caching
allocator's peak in use and reserved bytes; PyTorch: torch.cuda.max_memory_allocated and
max_memory_reserved; both: device memory used, from cudaMemGetInfo), the ratios, the device name and the TF32
flags PyTorch ran with. PyTorch's model is torchvision's densenet121(num_classes=5) with cudnn.benchmark=True
(its first conv0 takes 1 channel for the 512x512 mammography configuration).

    python3 bench/gpu/compare_pytorch_gpu.py --bench build/bench/gpu/bench_train_step_gpu --json-out out.json
    python3 bench/gpu/compare_pytorch_gpu.py --quick --dry-run      # print the commands only

The worker mode (--worker torch ...) is what the script runs in each PyTorch process.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

DEFAULT_CONFIGS = "32x224x3,8x512x1"  # batch x size x channels


def parse_configs(text):
    out = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise SystemExit(f"--configs: '{item}' is not BATCHxSIZExCHANNELS, e.g. 32x224x3")
        out.append(tuple(int(p) for p in parts))
    return out


# ------------------------------------------------------------------------------------------ PyTorch worker

def tf32_flags(torch):
    """The TF32 settings in force, under both the legacy flags and the fp32_precision API (PyTorch >= 2.9)."""
    flags = {
        "matmul.allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn.allow_tf32": bool(torch.backends.cudnn.allow_tf32),
    }
    for name, obj in (("matmul.fp32_precision", getattr(torch.backends.cuda.matmul, "fp32_precision", None)),
                      ("cudnn.conv.fp32_precision",
                       getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None))):
        if obj is not None:
            flags[name] = str(obj)
    flags["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    return flags


def torch_worker(a):
    import torch
    import torchvision

    torch.manual_seed(a.seed)
    torch.backends.cudnn.benchmark = True
    if a.tf32 == "off":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda", a.device)
    torch.cuda.set_device(dev)
    model = torchvision.models.densenet121(num_classes=a.classes)
    if a.channels != 3:
        model.features.conv0 = torch.nn.Conv2d(a.channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model = model.to(dev)
    x = torch.randn(a.batch, a.channels, a.size, a.size, device=dev)
    y = (torch.arange(a.batch, device=dev) % a.classes).long()
    crit = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(dev)
    steps, losses, used_peak = [], [], 0
    for s in range(a.warmup + a.steps):
        torch.cuda.synchronize()
        start.record()
        if a.mode == "train":
            model.train()
            opt.zero_grad(set_to_none=True)
            loss = crit(model(x), y)
            loss.backward()
            opt.step()
        else:
            model.eval()
            with torch.no_grad():
                logits = model(x)
        stop.record()
        stop.synchronize()
        free_b, total_b = torch.cuda.mem_get_info(dev)
        used_peak = max(used_peak, total_b - free_b)
        if s >= a.warmup:
            steps.append(start.elapsed_time(stop) / 1000.0)
            if a.mode == "train":
                losses.append(float(loss.item()))
            else:
                if not torch.isfinite(logits).all():
                    raise SystemExit("PyTorch forward produced non-finite logits")
    med = statistics.median(steps)
    print(json.dumps({
        "framework": "pytorch", "tf32": a.tf32, "tf32_flags": tf32_flags(torch), "mode": a.mode,
        "batch": a.batch, "size": a.size, "channels": a.channels, "classes": a.classes,
        "warmup": a.warmup, "steps": a.steps, "gpu": torch.cuda.get_device_name(dev),
        "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
        "images_per_s": a.batch / med, "median_step_s": med, "step_s": steps, "losses": losses,
        "max_memory_allocated_bytes": torch.cuda.max_memory_allocated(dev),
        "max_memory_reserved_bytes": torch.cuda.max_memory_reserved(dev),
        "device_used_bytes": used_peak,
        "parameters": sum(p.numel() for p in model.parameters()),
    }), flush=True)


# ------------------------------------------------------------------------------------------ driver

def worker_command(a, kind, batch, size, channels, mode):
    common = ["--mode", mode, "--batch", str(batch), "--size", str(size), "--channels", str(channels),
              "--classes", str(a.classes), "--warmup", str(a.warmup), "--steps", str(a.steps),
              "--device", str(a.device)]
    if kind == "mammocl":
        return [a.bench] + common + ["--json"]
    if kind == "mammocl-tf32":
        return [a.bench] + common + ["--allow-tf32", "--json"]
    tf32 = "default" if kind == "pytorch" else "off"
    return [sys.executable, os.path.abspath(__file__), "--worker", "torch", "--tf32", tf32] + common


def run_one(cmd, timeout):
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-5:]
        return None, f"exit {p.returncode}: " + " | ".join(tail)
    r = json.loads(lines[-1])
    r["process_s"] = time.monotonic() - t0
    return r, None


def mib(b):
    return f"{b / 2**20:.0f}" if b is not None else "-"


def summarise(results, kinds):
    """Median over rounds of each process's median step; max over rounds of the memory figures."""
    table = []
    for key, per_kind in results.items():
        batch, size, channels, mode = key
        row = {"batch": batch, "size": size, "channels": channels, "mode": mode}
        for kind in kinds:
            runs = per_kind.get(kind, [])
            if not runs:
                continue
            ips = statistics.median(r["images_per_s"] for r in runs)
            entry = {"images_per_s": ips, "rounds": len(runs),
                     "device_used_bytes": max(r.get("device_used_bytes", 0) for r in runs),
                     "gpu": runs[0].get("gpu")}
            if kind.startswith("mammocl"):
                entry["peak_in_use_bytes"] = max(r["peak_in_use_bytes"] for r in runs)
                entry["reserved_bytes"] = max(r["reserved_bytes"] for r in runs)
            else:
                entry["max_memory_allocated_bytes"] = max(r["max_memory_allocated_bytes"] for r in runs)
                entry["max_memory_reserved_bytes"] = max(r["max_memory_reserved_bytes"] for r in runs)
                entry["tf32_flags"] = runs[0]["tf32_flags"]
                entry["torch"] = runs[0]["torch"]
                entry["cudnn"] = runs[0]["cudnn"]
            row[kind] = entry
        table.append(row)
    return table


def markdown(table, kinds):
    head = ["config", "mode"] + [f"{k} img/s" for k in kinds] + \
        ["ours / torch fp32", "ours / torch default", "ours peak in use MiB", "ours reserved MiB",
         "torch max allocated MiB", "torch max reserved MiB", "device used MiB ours / torch"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table:
        ours = row.get("mammocl", {})
        t_off = row.get("pytorch-fp32", {})
        t_def = row.get("pytorch", {})

        def ratio(a, b):
            return f"{a['images_per_s'] / b['images_per_s']:.2f}" if a and b else "-"
        cells = [f"{row['batch']}x{row['channels']}x{row['size']}x{row['size']}", row["mode"]]
        cells += [f"{row[k]['images_per_s']:.1f}" if k in row else "-" for k in kinds]
        cells += [ratio(ours, t_off), ratio(ours, t_def), mib(ours.get("peak_in_use_bytes")),
                  mib(ours.get("reserved_bytes")),
                  mib((t_off or t_def).get("max_memory_allocated_bytes")),
                  mib((t_off or t_def).get("max_memory_reserved_bytes")),
                  f"{mib(ours.get('device_used_bytes'))} / {mib((t_off or t_def).get('device_used_bytes'))}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def driver(a):
    configs = parse_configs(a.configs)
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    for m in modes:
        if m not in ("train", "forward"):
            raise SystemExit(f"--modes: '{m}' is neither train nor forward")
    kinds = ["mammocl"] + (["mammocl-tf32"] if a.ours_tf32 else []) + ["pytorch", "pytorch-fp32"]
    if not a.dry_run and not os.access(a.bench, os.X_OK):
        raise SystemExit(f"--bench: '{a.bench}' is not an executable; build bench_train_step_gpu "
                         "(-DMAMMOCL_WITH_CUDA=ON) or pass its path")
    t0 = time.monotonic()
    results, skipped, failures = {}, [], []
    # Rounds outermost: when the time budget runs out, every configuration has had its first rounds.
    keys = [(b, s, c, m) for b, s, c in configs for m in modes]
    for key in keys:
        results[key] = {}
    for rnd in range(a.rounds):
        for key in keys:
            batch, size, channels, mode = key
            order = kinds if rnd % 2 == 0 else list(reversed(kinds))
            for kind in order:
                cmd = worker_command(a, kind, batch, size, channels, mode)
                if a.dry_run:
                    print(f"round {rnd + 1}: " + " ".join(shlex.quote(c) for c in cmd))
                    continue
                left = a.time_budget - (time.monotonic() - t0)
                if left < 5:
                    skipped.append({"config": key, "round": rnd + 1, "kind": kind})
                    continue
                r, err = run_one(cmd, min(a.timeout, left))
                if err:
                    failures.append({"config": key, "round": rnd + 1, "kind": kind, "error": err})
                    print(f"  {kind} {batch}x{channels}x{size} {mode} round {rnd + 1}: FAILED {err}",
                          file=sys.stderr, flush=True)
                    continue
                results[key].setdefault(kind, []).append(r)
                print(f"  {kind:13s} {batch}x{channels}x{size}x{size} {mode:7s} round {rnd + 1}: "
                      f"{r['images_per_s']:.1f} img/s", file=sys.stderr, flush=True)
    if a.dry_run:
        return 0
    table = summarise(results, kinds)
    gpu = next((row[k]["gpu"] for row in table for k in kinds if k in row and row[k].get("gpu")), "unknown GPU")
    torch_info = next((row[k] for row in table for k in ("pytorch", "pytorch-fp32") if k in row), None)
    print(f"\nDenseNet-121 on {gpu}; median over {a.rounds} round(s) of the median of {a.steps} timed steps "
          f"after {a.warmup} warm-up step(s); fresh process per measurement, order flipped every round.")
    if torch_info:
        print(f"PyTorch {torch_info['torch']}, cuDNN {torch_info['cudnn']}; TF32 flags of 'pytorch': "
              f"{next((row['pytorch']['tf32_flags'] for row in table if 'pytorch' in row), '-')}; "
              f"of 'pytorch-fp32': {next((row['pytorch-fp32']['tf32_flags'] for row in table if 'pytorch-fp32' in row), '-')}")
    print("mammocl: exact float32 (allow_tf32 false)" + ("; mammocl-tf32: --allow-tf32" if a.ours_tf32 else ""))
    print()
    print(markdown(table, kinds))
    if skipped:
        print(f"\n{len(skipped)} measurement(s) skipped: the time budget of {a.time_budget} s ran out")
    if failures:
        print(f"\n{len(failures)} measurement(s) failed:")
        for f in failures:
            print(f"  {f['kind']} {f['config']} round {f['round']}: {f['error']}")
    if a.json_out:
        with open(a.json_out, "w") as fh:
            json.dump({"gpu": gpu, "rounds": a.rounds, "steps": a.steps, "warmup": a.warmup,
                       "table": table, "skipped": skipped, "failures": failures,
                       "raw": [{"batch": k[0], "size": k[1], "channels": k[2], "mode": k[3], "runs": v}
                               for k, v in results.items()]}, fh, indent=1, default=str)
        print(f"\nwrote {a.json_out}")
    return 1 if failures and not any(row.get("mammocl") for row in table) else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", default="build/bench/gpu/bench_train_step_gpu", help="bench_train_step_gpu binary")
    p.add_argument("--configs", default=DEFAULT_CONFIGS, help="BATCHxSIZExCHANNELS list (default %(default)s)")
    p.add_argument("--modes", default="train,forward", help="train and/or forward (default %(default)s)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--classes", type=int, default=5)
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--ours-tf32", action="store_true", help="also run ours with --allow-tf32")
    p.add_argument("--quick", action="store_true",
                   help="2 rounds, 2 warm-up and 10 timed steps, train only (for a time-limited GPU session)")
    p.add_argument("--time-budget", type=float, default=1800.0, help="seconds for all measurements (default %(default)s)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per process (default %(default)s)")
    p.add_argument("--json-out", help="write the table and every raw run to this JSON file")
    p.add_argument("--dry-run", action="store_true", help="print the commands it would run and exit")
    p.add_argument("--worker", choices=["torch"], help=argparse.SUPPRESS)
    p.add_argument("--tf32", choices=["default", "off"], default="default", help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=["train", "forward"], default="train", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=224, help=argparse.SUPPRESS)
    p.add_argument("--channels", type=int, default=3, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker == "torch":
        torch_worker(a)
        return 0
    if a.quick:
        a.rounds, a.warmup, a.steps = min(a.rounds, 2), 2, 10
        if a.modes == "train,forward":
            a.modes = "train"
    for name in ("rounds", "steps"):
        if getattr(a, name) < 1:
            raise SystemExit(f"--{name} must be >= 1")
    if a.warmup < 0:
        raise SystemExit("--warmup must be >= 0")
    return driver(a)


if __name__ == "__main__":
    sys.exit(main())
