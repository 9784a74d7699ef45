#!/usr/bin/env bash
# Installs the dependencies, builds the library, its tests and examples, and runs the whole CPU test
# suite through ctest (including an install + find_package(mammocl) consumer build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --render
build=${MAMMOCL_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMAMMOCL_BUILD_TESTS=ON -DMAMMOCL_BUILD_EXAMPLES=ON \
  -DMAMMOCL_BUILD_BENCH=ON -DMAMMOCL_WITH_DICOM=ON
cmake --build "$build" --parallel "$(nproc)"
ctest --test-dir "$build" --output-on-failure --label-exclude gpu --timeout 1500
