#!/usr/bin/env bash
# Installs the dependencies, builds the library, its tests and examples, and runs the whole CPU test
# suite through ctest (including an install + find_package(mammocl) consumer build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --render
build=${MAMMOCL_BUILD_DIR:-build}
# The CUDA backend, its GPU tests, examples and benchmarks are compiled and linked whenever the CUDA toolkit
# (nvcc) and cuDNN 9 are installed, GPU or not; the tests labelled gpu are not run here (they need a GPU:
# scripts/gpu-check.sh runs them on a GPU machine). MAMMOCL_WITH_CUDA=OFF in the environment skips them.
cuda=OFF
nvcc=$(command -v nvcc || true)
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
cudnn=
for d in "$(dirname "${nvcc:-/nonexistent}")/../include" /usr/include /usr/include/x86_64-linux-gnu; do
  [ -f "$d/cudnn_version.h" ] && cudnn=$d && break
done
if [ "${MAMMOCL_WITH_CUDA:-auto}" != OFF ] && [ -n "$nvcc" ] && [ -n "$cudnn" ]; then
  cuda=ON
  export CUDACXX=$nvcc
  echo "scripts/test.sh: building the CUDA backend with $nvcc (no GPU needed to compile; gpu tests are not run)"
else
  echo "scripts/test.sh: no nvcc or no cuDNN found (or MAMMOCL_WITH_CUDA=OFF): building without the CUDA backend"
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMAMMOCL_BUILD_TESTS=ON -DMAMMOCL_BUILD_EXAMPLES=ON \
  -DMAMMOCL_BUILD_BENCH=ON -DMAMMOCL_WITH_DICOM=ON -DMAMMOCL_WITH_CUDA=$cuda
cmake --build "$build" --parallel "$(nproc)"
ctest --test-dir "$build" --output-on-failure --label-exclude gpu --timeout 1500
