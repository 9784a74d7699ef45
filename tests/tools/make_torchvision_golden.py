#!/usr/bin/python3
"""Generates tests/cpu/golden/torchvision_densenet121.hpp, the reference data of
tests/cpu/test_torchvision_equivalence.cpp.

For torchvision's densenet121(num_classes=5), with 3 input channels ("rgb") and with conv0 replaced by a
1-channel convolution ("gray"), this script

1. fills EVERY state-dict entry (parameters, running statistics, num_batches_tracked) from a counter-based
   hash that the C++ test reproduces bit for bit (see `values_for` and `uniform`),
2. exports the state dict with safetensors.torch.save_file (metadata {"format": "pt"}) and records the
   exact JSON header of that file, its size and a checksum of its bytes (and of every tensor's bytes),
3. runs a fixed 2x{3,1}x64x64 input (same hash, stream INPUT_STREAM) through the model in eval mode and in
   train mode (batch statistics), in float32 and in float64 (model.double()), and records the logits and,
   for the rgb variant, the running statistics of norm0 and norm5 after the float64 train-mode forward.

No weights file is committed: the C++ test regenerates the weights, writes the safetensors file byte for
byte with the recorded header, checks the checksum, loads it with mammocl::io::load_state and compares.

Run with Debian's interpreter (torch 1.13 and torchvision 0.14 from Debian) plus the safetensors package:
    /usr/bin/python3 -m venv --system-site-packages /tmp/st && /tmp/st/bin/pip install safetensors
    /tmp/st/bin/python tests/tools/make_torchvision_golden.py
"""
import argparse
import copy
import json
import math
import os
import platform
import struct
import sys
import tempfile

import numpy as np
import safetensors
import safetensors.torch
import torch
import torchvision

INPUT_STREAM = 1000000  # hash stream of the input tensor (weight streams are 0 .. number of keys - 1)
BATCH, HEIGHT, WIDTH, NUM_CLASSES = 2, 64, 64, 5
MASK64 = (1 << 64) - 1


def splitmix64(x):
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(stream, n):
    """n doubles in [-1, 1): u_i = (splitmix64((stream << 32) ^ i) >> 11) * 2^-52 - 1, computed exactly."""
    i = np.arange(n, dtype=np.uint64)
    z = splitmix64((np.uint64(stream) << np.uint64(32)) ^ i)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0


def values_for(name, shape, stream):
    """The values of state-dict entry `name` (hash stream = its index in sorted-key order).

    Every formula is one multiplication, or an addition followed by a multiplication, in double precision,
    then rounded to float32: no fused multiply-add can change the result in C++.
    """
    n = int(np.prod(shape)) if shape else 1
    if name.endswith("num_batches_tracked"):
        return np.array(1000 + stream, dtype=np.int64).reshape(shape)
    u = uniform(stream, n)
    if name.endswith("running_mean"):
        v = u * 0.1
    elif name.endswith("running_var"):
        v = (np.abs(u) + 2.0) * 0.5  # 1 + 0.5|u|
    elif len(shape) == 4:  # convolution weight (out, in, kh, kw): He-uniform
        v = u * math.sqrt(6.0 / (shape[1] * shape[2] * shape[3]))
    elif len(shape) == 2:  # linear weight (out, in)
        v = u * (1.0 / math.sqrt(shape[1]))
    elif name.endswith(".bias"):
        v = u * 0.1
    elif name.endswith(".weight") and len(shape) == 1:  # BN gamma
        v = (u + 5.0) * 0.2  # 1 + 0.2u
    else:
        raise ValueError(f"no fill rule for {name} {shape}")
    return v.astype(np.float32).reshape(shape)


def checksum(data):
    """sum_i w_i * (2i + 1) mod 2^64 over the little-endian u64 words of `data` zero-padded to 8 bytes."""
    data = bytes(data) + b"\0" * (-len(data) % 8)
    w = np.frombuffer(data, dtype="<u8")
    mult = np.arange(len(w), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    return int((w * mult).sum(dtype=np.uint64))


def build(in_channels):
    torch.manual_seed(0)
    model = torchvision.models.densenet121(num_classes=NUM_CLASSES)
    if in_channels != 3:
        model.features.conv0 = torch.nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    sd = model.state_dict()
    keys = sorted(sd)
    with torch.no_grad():
        for stream, key in enumerate(keys):
            t = sd[key]
            t.copy_(torch.from_numpy(values_for(key, tuple(t.shape), stream)))
    return model


def c_doubles(values, per_line=4):
    items = [repr(float(v)) for v in values]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "{\n    " + ",\n    ".join(lines) + "}"


def run_variant(tag, in_channels, workdir):
    model = build(in_channels)
    path = os.path.join(workdir, f"densenet121_{tag}.safetensors")
    safetensors.torch.save_file(model.state_dict(), path, metadata={"format": "pt"})
    with open(path, "rb") as f:
        image = f.read()
    (n,) = struct.unpack("<Q", image[:8])
    header = image[8:8 + n].decode("utf-8")
    data = image[8 + n:]

    # The file must load back bit for bit.
    loaded = safetensors.torch.load_file(path)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded[k], v), k

    info = json.loads(header)
    tensor_sums = [(k, checksum(data[info[k]["data_offsets"][0]:info[k]["data_offsets"][1]]))
                   for k in sorted(info) if k != "__metadata__"]

    x32 = torch.from_numpy(uniform(INPUT_STREAM, BATCH * in_channels * HEIGHT * WIDTH).astype(np.float32)
                           ).reshape(BATCH, in_channels, HEIGHT, WIDTH)
    out = {}
    with torch.no_grad():
        for prec, dt in (("f32", torch.float32), ("f64", torch.float64)):
            m = copy.deepcopy(model).to(dt)
            x = x32.to(dt)
            m.eval()
            out[f"eval_logits_{prec}"] = m(x).flatten().tolist()
            m.train()
            out[f"train_logits_{prec}"] = m(x).flatten().tolist()
            if prec == "f64":
                f = m.features
                out["norm0_running_mean_f64"] = f.norm0.running_mean.tolist()
                out["norm0_running_var_f64"] = f.norm0.running_var.tolist()
                out["norm5_running_mean_f64"] = f.norm5.running_mean.tolist()
                out["norm5_running_var_f64"] = f.norm5.running_var.tolist()
                stream = sorted(model.state_dict()).index("features.norm0.num_batches_tracked")
                assert int(f.norm0.num_batches_tracked) == 1000 + stream + 1  # one train-mode forward
    return dict(tag=tag, in_channels=in_channels, header=header, file_size=len(image), file_checksum=checksum(image),
                tensor_sums=tensor_sums, **out)


def emit(variants, with_stats):
    versions = (f"torch {torch.__version__}, torchvision {torchvision.__version__}, safetensors "
                f"{safetensors.__version__}, numpy {np.__version__}, Python {platform.python_version()}")
    o = []
    o.append("// Generated by tests/tools/make_torchvision_golden.py; do not edit, rerun the script instead.")
    o.append(f"// Produced with {versions}.")
    o.append("//")
    o.append("// torchvision densenet121(num_classes=5), every state-dict entry filled from the hash described in the")
    o.append("// script, exported with safetensors.torch.save_file; logits of a fixed 2xCx64x64 input in eval and")
    o.append("// train mode, computed by PyTorch in float32 and float64.")
    o.append("#pragma once")
    o.append("#include <cstdint>")
    o.append("#include <span>")
    o.append("#include <string_view>")
    o.append("")
    o.append("namespace mammocl::golden::torchvision_densenet121 {")
    o.append("")
    o.append("/// checksum() of the bytes of one tensor in the data region.")
    o.append("struct tensor_checksum {")
    o.append("  std::string_view name;")
    o.append("  std::uint64_t checksum;")
    o.append("};")
    o.append("")
    o.append(f"inline constexpr std::uint64_t input_stream = {INPUT_STREAM};")
    o.append(f"inline constexpr std::int64_t batch = {BATCH}, height = {HEIGHT}, width = {WIDTH}, num_classes = {NUM_CLASSES};")
    o.append("")
    for v in variants:
        t = v["tag"]
        o.append(f"namespace {t}_data {{")
        o.append(f"inline constexpr char header[] = R\"json({v['header']})json\";")
        for key in ("eval_logits_f32", "train_logits_f32", "eval_logits_f64", "train_logits_f64"):
            o.append(f"inline constexpr double {key}[] = {c_doubles(v[key])};")
        if t in with_stats:
            for key in ("norm0_running_mean_f64", "norm0_running_var_f64", "norm5_running_mean_f64",
                        "norm5_running_var_f64"):
                o.append(f"inline constexpr double {key}[] = {c_doubles(v[key])};")
            o.append("inline constexpr tensor_checksum tensor_checksums[] = {")
            for k, s in v["tensor_sums"]:
                o.append(f"    {{\"{k}\", {s}ULL}},")
            o.append("};")
        o.append(f"}}  // namespace {t}_data")
        o.append("")
    o.append("/// One model variant: the exact safetensors header torch wrote, the file's size and checksum, and")
    o.append("/// PyTorch's outputs. Logits are row-major (batch, num_classes).")
    o.append("struct variant {")
    o.append("  std::int64_t in_channels;")
    o.append("  std::string_view header;  ///< the JSON header bytes, including the padding spaces")
    o.append("  std::uint64_t file_size;")
    o.append("  std::uint64_t file_checksum;")
    o.append("  std::span<const double> eval_logits_f32, train_logits_f32, eval_logits_f64, train_logits_f64;")
    o.append("  /// Running statistics after the float64 train-mode forward (empty when not recorded).")
    o.append("  std::span<const double> norm0_running_mean_f64, norm0_running_var_f64, norm5_running_mean_f64,")
    o.append("      norm5_running_var_f64;")
    o.append("  std::span<const tensor_checksum> tensor_checksums;  ///< empty when not recorded")
    o.append("};")
    o.append("")
    for v in variants:
        t = v["tag"]
        d = f"{t}_data::"
        stats = (f"{d}norm0_running_mean_f64, {d}norm0_running_var_f64, {d}norm5_running_mean_f64, "
                 f"{d}norm5_running_var_f64, {d}tensor_checksums" if t in with_stats else "{}, {}, {}, {}, {}")
        o.append(f"inline constexpr variant {t}{{{v['in_channels']}, {{{d}header, sizeof {d}header - 1}}, "
                 f"{v['file_size']}ULL, {v['file_checksum']}ULL,")
        o.append(f"    {d}eval_logits_f32, {d}train_logits_f32, {d}eval_logits_f64, {d}train_logits_f64,")
        o.append(f"    {stats}}};")
    o.append("")
    o.append("}  // namespace mammocl::golden::torchvision_densenet121")
    return "\n".join(o) + "\n"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(here, "..", "cpu", "golden", "torchvision_densenet121.hpp"))
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    with tempfile.TemporaryDirectory() as tmp:
        variants = [run_variant("rgb", 3, tmp), run_variant("gray", 1, tmp)]
    text = emit(variants, with_stats={"rgb"})
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    for v in variants:
        print(f"{v['tag']}: file {v['file_size']} bytes, header {len(v['header'])} bytes, "
              f"eval logits {v['eval_logits_f32'][:3]}..., train logits {v['train_logits_f32'][:3]}...")
    print(f"wrote {os.path.normpath(args.out)} ({len(text)} bytes)")


if __name__ == "__main__":
    sys.exit(main())
