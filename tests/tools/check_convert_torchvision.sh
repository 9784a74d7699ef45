#!/bin/bash
# Developer check of scripts/convert_torchvision_weights.py against MammoCL's loader (not part of ctest: it
# needs Python with torch and torchvision, which CI does not have).
#
# 1. Builds torchvision.models.densenet121(weights=None) from a fixed seed, gives every batch norm
#    non-trivial statistics and affine parameters (the defaults 0/1 would hide swapped norm keys), and
#    saves its state dict as torchvision's published densenet121-a639ec97.pth has it: legacy key names
#    (`denselayer1.norm.1.weight`), no `num_batches_tracked`, torch's legacy (non-zip) serialization.
# 2. Computes torch's eval-mode logits and pooled features on a fixed input, RGB and grey (the grey image
#    repeated on the three channels).
# 3. Converts the file with the script: legacy names kept; --rename-legacy; --rename-legacy --in-channels 1;
#    and a {"state_dict": ..., "epoch": ...} checkpoint with --in-channels 1 --drop-classifier.
# 4. Compiles a small C++ program (g++ -std=c++20 -O1 -fopenmp, headers only) that loads each file with
#    io::load_state into models::densenet<cpu_backend, densenet121> and compares its output with torch's:
#    max |difference| <= 1e-4 (relative to the largest |value| when that exceeds 1).
# 5. Checks the converter's error messages for bad inputs.
#
# Run from anywhere:  tests/tools/check_convert_torchvision.sh
# Environment: PYTHON (default /usr/bin/python3, Debian's, which has torch 1.13 and torchvision 0.14),
#              CXX (default g++), KEEP=1 keeps the work directory.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
CXX=${CXX:-g++}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/check_convert_torchvision.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then echo "work directory: $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
CONVERT=("$PY" "$ROOT/scripts/convert_torchvision_weights.py")
N=2 H=64 W=64

# ------------------------------------------------------------------ the C++ side
cat > "$WORK/check.cpp" <<'CPP'
// Loads a converted checkpoint with mammocl::io::load_state and compares MammoCL's eval-mode output on a
// fixed input with torch's (raw little-endian float32 files written by the Python side).
// usage: check FILE IN_CHANNELS NUM_CLASSES MODE INPUT REFERENCE N H W
//   MODE legacy: {.torchvision_legacy = true}, logits      strict: default options, logits
//        head: {.torchvision_legacy = true, .exclude_prefixes = {"classifier."}}, pooled features
//        head-strict: {.exclude_prefixes = {"classifier."}}, pooled features
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/io/checkpoint.hpp"
#include "mammocl/models/densenet.hpp"

namespace {
std::vector<float> read_f32(const std::string& path, std::size_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<float> v(n);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * sizeof(float)));
  if (static_cast<std::size_t>(in.gcount()) != n * sizeof(float) || in.peek() != EOF)
    throw std::runtime_error(path + " does not hold exactly " + std::to_string(n) + " float32 values");
  return v;  // little-endian, as on the x86-64 / arm64 hosts this runs on
}
}  // namespace

int main(int argc, char** argv) try {
  if (argc != 10) {
    std::cerr << "usage: " << argv[0] << " FILE IN_CHANNELS NUM_CLASSES MODE INPUT REFERENCE N H W\n";
    return 2;
  }
  using B = mammocl::cpu_backend;
  using mammocl::index_t;
  const std::string file = argv[1], mode = argv[4];
  const index_t cin = std::stol(argv[2]), classes = std::stol(argv[3]);
  const index_t n = std::stol(argv[7]), h = std::stol(argv[8]), w = std::stol(argv[9]);

  mammocl::models::densenet<B, mammocl::models::densenet121> net({.in_channels = cin, .num_classes = classes});
  net.init(12345);  // an excluded head keeps this initialisation
  mammocl::io::load_options opt;
  const bool head = mode == "head" || mode == "head-strict";
  if (mode == "legacy" || mode == "head") opt.torchvision_legacy = true;
  else if (mode != "strict" && mode != "head-strict") throw std::runtime_error("unknown mode " + mode);
  if (head) opt.exclude_prefixes = {"classifier."};
  const auto r = mammocl::io::load_state(net, file, opt);
  std::cout << "  load_state(" << mode << "): loaded " << r.loaded.size() << ", renamed " << r.renamed.size()
            << ", counters defaulted " << r.defaulted.size() << ", excluded " << r.excluded.size() << ", missing "
            << r.missing.size() << ", unexpected " << r.unexpected.size() << "; metadata source '"
            << r.metadata.at("source") << "', sha256 " << r.metadata.at("sha256").substr(0, 12) << "...\n";

  mammocl::tensor<B> x(mammocl::shape{n, cin, h, w});
  const auto input = read_f32(argv[5], static_cast<std::size_t>(x.numel()));
  B::from_host(input.data(), x);
  B::context ctx;
  const auto y = head ? net.infer_features(ctx, x) : net.infer(ctx, x);
  std::vector<float> got(static_cast<std::size_t>(y.numel()));
  B::to_host(y, got.data());
  const auto ref = read_f32(argv[6], got.size());

  double max_abs = 0, max_ref = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) throw std::runtime_error("non-finite output at index " + std::to_string(i));
    max_abs = std::max(max_abs, std::abs(static_cast<double>(got[i]) - ref[i]));
    max_ref = std::max(max_ref, std::abs(static_cast<double>(ref[i])));
  }
  const bool ok = max_abs <= 1e-4 * std::max(1.0, max_ref);
  std::cout << "  " << (head ? "pooled features " : "logits ") << y.dims() << ": max |mammocl - torch| = " << max_abs
            << " (max |torch| = " << max_ref << ", relative " << max_abs / std::max(max_ref, 1e-30) << ") "
            << (ok ? "PASS" : "FAIL") << "\n";
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::cerr << "check: " << e.what() << "\n";
  return 1;
}
CPP
echo "== compiling the C++ check"
"$CXX" -std=c++20 -O1 -fopenmp -I "$ROOT/include" -I /usr/include/eigen3 "$WORK/check.cpp" -o "$WORK/check"

# ------------------------------------------------------------------ the torch side
echo "== building torchvision densenet121 (seeded) and torch's reference outputs"
"$PY" - "$WORK" "$N" "$H" "$W" <<'PYEOF'
import collections, re, sys
import torch, torchvision
import torch.nn.functional as F

work, n, h, w = sys.argv[1], *map(int, sys.argv[2:5])
torch.manual_seed(0)
model = torchvision.models.densenet121(weights=None)
g = torch.Generator().manual_seed(1)
with torch.no_grad():
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            c = mod.num_features
            mod.weight.copy_(0.8 + 0.4 * torch.rand(c, generator=g))
            mod.bias.copy_(0.1 * torch.randn(c, generator=g))
            mod.running_mean.copy_(0.1 * torch.randn(c, generator=g))
            mod.running_var.copy_(0.5 + torch.rand(c, generator=g))
    model.classifier.bias.copy_(0.1 * torch.randn(1000, generator=g))
model.eval()
state = model.state_dict()

# torchvision's published file: legacy names, no counters, old serialization.
modern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))([12])\.(weight|bias|running_mean|running_var)$")
legacy = collections.OrderedDict()
for k, v in state.items():
    if k.endswith("num_batches_tracked"):
        continue
    legacy[modern.sub(r"\1.\2.\3", k)] = v.clone()
n_legacy = sum(1 for k in legacy if k not in state)
assert n_legacy == 10 * (6 + 12 + 24 + 16), n_legacy  # per dense layer: norm1 (4 keys), conv1, norm2 (4), conv2
torch.save(legacy, f"{work}/densenet121_legacy.pth", _use_new_zipfile_serialization=False)
# training checkpoints wrapping a modern state dict
torch.save({"state_dict": state, "epoch": 7}, f"{work}/checkpoint.pth")
# a training checkpoint holding a float: torch 1.13's weights-only reader refuses it (needs --trust-pickle)
torch.save({"model": state, "epoch": 7, "best_auc": 0.5}, f"{work}/checkpoint_float.pth")
# nn.DataParallel's key prefix on the legacy file
torch.save(collections.OrderedDict(("module." + k, v) for k, v in legacy.items()), f"{work}/data_parallel.pth")
print(f"  {len(state)} state-dict keys, {len(legacy)} in the legacy file ({n_legacy} legacy names)")

def features(x):
    return torch.flatten(F.adaptive_avg_pool2d(F.relu(model.features(x)), 1), 1)

gen = torch.Generator().manual_seed(2)
rgb = torch.randn(n, 3, h, w, generator=gen)
grey = torch.randn(n, 1, h, w, generator=gen)
with torch.no_grad():
    out = {"rgb_logits": model(rgb), "rgb_features": features(rgb),
           "grey_logits": model(grey.repeat(1, 3, 1, 1)), "grey_features": features(grey.repeat(1, 3, 1, 1))}
for name, t in [("rgb_input", rgb), ("grey_input", grey), *out.items()]:
    t.contiguous().numpy().astype("<f4").tofile(f"{work}/{name}.f32")
print("  torch logits: max |.| %.4g; pooled features: max |.| %.4g" %
      (out["rgb_logits"].abs().max(), out["rgb_features"].abs().max()))
PYEOF

# ------------------------------------------------------------------ convert
echo "== converting"
"${CONVERT[@]}" "$WORK/densenet121_legacy.pth" "$WORK/legacy.safetensors"
"${CONVERT[@]}" --rename-legacy "$WORK/densenet121_legacy.pth" "$WORK/modern.safetensors"
"${CONVERT[@]}" --rename-legacy --in-channels 1 "$WORK/densenet121_legacy.pth" "$WORK/grey.safetensors"
"${CONVERT[@]}" --in-channels 1 --drop-classifier "$WORK/checkpoint.pth" "$WORK/grey_features.safetensors"
"${CONVERT[@]}" --trust-pickle "$WORK/checkpoint_float.pth" "$WORK/from_model_key.safetensors"
"${CONVERT[@]}" --strip-prefix module. --rename-legacy "$WORK/data_parallel.pth" "$WORK/from_data_parallel.safetensors"


echo "== the renamed file is a complete torchvision state dict (read back in Python, strict load_state_dict)"
"$PY" - "$WORK" <<'PYEOF'
import json, struct, sys
import numpy as np, torch, torchvision
work = sys.argv[1]

def read(name):
    """Our own safetensors reader: header length, JSON header, data; checks the layout."""
    raw = open(f"{work}/{name}", "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, n
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__")
    data = raw[8 + n:]
    sd, end_max = {}, 0
    for k, e in header.items():
        b, end = e["data_offsets"]
        dt = {"F32": "<f4", "I64": "<i8"}[e["dtype"]]
        sd[k] = torch.from_numpy(np.frombuffer(data[b:end], dtype=dt).reshape(e["shape"]).copy())
        end_max = max(end_max, end)
    assert end_max == len(data), (end_max, len(data))
    return sd, meta, n

sd, meta, n = read("modern.safetensors")
assert meta["format"] == "pt" and meta["source"] == "densenet121_legacy.pth" and len(meta["sha256"]) == 64, meta
m = torchvision.models.densenet121(weights=None)
m.load_state_dict(sd, strict=True)
other, meta2, _ = read("from_model_key.safetensors")
assert meta2["source"] == "checkpoint_float.pth", meta2
assert sd.keys() == other.keys() and all(torch.equal(sd[k], other[k]) for k in sd)
other, _, _ = read("from_data_parallel.safetensors")
assert sd.keys() == other.keys() and all(torch.equal(sd[k], other[k]) for k in sd)
print(f"  {len(sd)} tensors, header {n} bytes; torchvision densenet121.load_state_dict(strict=True) OK;"
      " the {'model': ...} checkpoint and"
      " the 'module.'-prefixed file (--strip-prefix) give the same tensors")
PYEOF

echo "== loading into MammoCL and comparing with torch"
run() { echo "$1"; shift; "$WORK/check" "$@" "$N" "$H" "$W"; }
run "legacy names kept, 3 channels, 1000 classes" \
  "$WORK/legacy.safetensors" 3 1000 legacy "$WORK/rgb_input.f32" "$WORK/rgb_logits.f32"
run "--rename-legacy, 3 channels, 1000 classes (strict, default options)" \
  "$WORK/modern.safetensors" 3 1000 strict "$WORK/rgb_input.f32" "$WORK/rgb_logits.f32"
run "--rename-legacy --in-channels 1, grey input vs torch on the grey image repeated x3" \
  "$WORK/grey.safetensors" 1 1000 strict "$WORK/grey_input.f32" "$WORK/grey_logits.f32"
run "legacy names kept, new 5-class head (exclude classifier.), pooled features" \
  "$WORK/legacy.safetensors" 3 5 head "$WORK/rgb_input.f32" "$WORK/rgb_features.f32"
run "{state_dict: ...} checkpoint, --in-channels 1 --drop-classifier, 5-class head, pooled features" \
  "$WORK/grey_features.safetensors" 1 5 head-strict "$WORK/grey_input.f32" "$WORK/grey_features.f32"

# ------------------------------------------------------------------ errors
echo "== converter errors"
"$PY" - "$WORK" <<'PYEOF'
import sys, torch
w = sys.argv[1]
torch.save([torch.zeros(2)], f"{w}/list.pth")
torch.save({"a.weight": torch.zeros(2), "a.index": torch.zeros(3, dtype=torch.int32)}, f"{w}/int.pth")
torch.save({"features.conv0.weight": torch.zeros(64, 1, 7, 7)}, f"{w}/grey_conv0.pth")
torch.save({"x.weight": torch.zeros(1, 1, 1, 1, 2)}, f"{w}/rank5.pth")
torch.save({"norm.num_batches_tracked": torch.zeros(2, dtype=torch.long)}, f"{w}/counter.pth")
open(f"{w}/garbage.pth", "wb").write(b"not a torch file")
PYEOF
expect_error() {  # expect_error FRAGMENT ARGS...
  local fragment=$1; shift
  local out
  if out=$("${CONVERT[@]}" "$@" "$WORK/out.safetensors" 2>&1); then echo "FAIL: expected an error for $*"; exit 1; fi
  if [[ "$out" != *"$fragment"* ]]; then echo "FAIL: message for $* lacks '$fragment': $out"; exit 1; fi
  if [ -e "$WORK/out.safetensors" ]; then echo "FAIL: an output was written for $*"; exit 1; fi
  echo "  ok: $out"
}
expect_error "does not exist" "$WORK/missing.pth"
if "${CONVERT[@]}" "$WORK/list.pth" "$WORK/list.pth" 2>/dev/null; then echo "FAIL: overwrote the input"; exit 1; fi
expect_error "holds a list, not a state dict" "$WORK/list.pth"
expect_error "key 'a.index'" "$WORK/int.pth"
expect_error "has shape [64, 1, 7, 7]; expected (out, 3, kh, kw)" --in-channels 1 "$WORK/grey_conv0.pth"
expect_error "of rank 5; MammoCL tensors have rank 4 at most" "$WORK/rank5.pth"
expect_error "must be one integer" "$WORK/counter.pth"
expect_error "is not a PyTorch file (neither a zip archive nor a pickle stream" "$WORK/garbage.pth"
expect_error "need --trust-pickle" "$WORK/checkpoint_float.pth"
echo "== all checks passed"
