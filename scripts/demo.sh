#!/usr/bin/env bash
# Installs the dependencies, builds the examples and runs the main example: training the small DenseNet
# patch classifier on the built-in synthetic 5-class task, with evaluation and a checkpoint round trip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${MAMMOCL_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMAMMOCL_BUILD_TESTS=OFF -DMAMMOCL_BUILD_EXAMPLES=ON \
  -DMAMMOCL_BUILD_BENCH=OFF
cmake --build "$build" --target train_patch_classifier --parallel "$(nproc)"
"$build/examples/train_patch_classifier" --out "$build/demo" "$@"
