#!/usr/bin/env bash
# Installs the dependencies, builds the examples and runs the main example: the small DenseNet patch
# classifier trained on the built-in two-domain task with the CE, SupContr and SupContr+CE strategies,
# evaluated on both domains (the results table), with a checkpoint round trip for each. Extra arguments go to
# the example (e.g. --strategy ce,supcon_linear,supcon_finetune,dann,mmd; --help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${MAMMOCL_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMAMMOCL_BUILD_TESTS=OFF -DMAMMOCL_BUILD_EXAMPLES=ON \
  -DMAMMOCL_BUILD_BENCH=OFF
cmake --build "$build" --target train_patch_classifier --parallel "$(nproc)"
"$build/examples/train_patch_classifier" --out "$build/demo" "$@"
