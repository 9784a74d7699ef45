#!/usr/bin/env bash
# One prepared run on a GPU machine with no package access: build the CUDA backend's tests, the GPU benchmark
# and the examples, run the tests labelled gpu, and compare the DenseNet-121 training step with PyTorch eager,
# all inside a time budget; logs and JSON go to $OUT. docs/gpu_testing.md describes the whole procedure.
#
#   bash scripts/gpu-check.sh [--quick] [--budget SECONDS] [--build-dir DIR] [--prefix DIR] [--jobs N]
#                             [--no-examples] [--no-bench] [--unpack-only] [--help]
#
# Before the session, on the CPU machine, from the checkout: `bash scripts/gpu-prepare.sh` puts the Debian
# packages the build needs (Eigen, Boost.Test, nlohmann-json, libpng, zlib) into .device/debs (git-ignored);
# the GPU call carries .device (docs/gpu_testing.md).
#
# Files written to $OUT (at most 8 come back from a device call): summary.txt, configure.log, build.log,
# ctest-gpu.log, ctest-gpu.xml, examples.log, compare.log, compare.json.
set -uo pipefail

usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  cat <<'EOF'

  --quick         smaller benchmark: 2 rounds, 10 timed steps, training step only (default budget 480 s)
  --budget S      wall-clock seconds for the whole script (default 540; 480 with --quick); the benchmark
                  gets what the build and the tests leave, minus a safety margin
  --build-dir D   build folder (default /tmp/build-gpu)
  --prefix D      where .device/debs are unpacked (default /tmp/devprefix)
  --jobs N        parallel build jobs (default: all cores)
  --no-examples   do not build the examples
  --no-bench      do not build or run the benchmark comparison
  --unpack-only   unpack .device/debs, print the environment the build would use, and stop
EOF
}

quick=0 budget="" build=/tmp/build-gpu prefix=/tmp/devprefix jobs="" examples=1 bench=1 unpack_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --budget) [ $# -ge 2 ] || { echo "gpu-check.sh: --budget needs a value" >&2; exit 2; }
      budget=$2; shift ;;
    --build-dir) [ $# -ge 2 ] || { echo "gpu-check.sh: --build-dir needs a value" >&2; exit 2; }
      build=$2; shift ;;
    --prefix) [ $# -ge 2 ] || { echo "gpu-check.sh: --prefix needs a value" >&2; exit 2; }
      prefix=$2; shift ;;
    --jobs) [ $# -ge 2 ] || { echo "gpu-check.sh: --jobs needs a value" >&2; exit 2; }
      jobs=$2; shift ;;
    --no-examples) examples=0 ;;
    --no-bench) bench=0 ;;
    --unpack-only) unpack_only=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$budget" ]; then budget=$([ $quick = 1 ] && echo 480 || echo 540); fi
case "$budget" in ''|*[!0-9]*) echo "gpu-check.sh: --budget needs a whole number of seconds, got '$budget'" >&2; exit 2 ;; esac
[ -z "$jobs" ] && jobs=$(nproc 2>/dev/null || echo 4)
case "$jobs" in ''|*[!0-9]*|0) echo "gpu-check.sh: --jobs needs a positive integer, got '$jobs'" >&2; exit 2 ;; esac

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
out=${OUT:-/tmp/gpu-check-out}
mkdir -p "$out" "$prefix"
summary="$out/summary.txt"
: > "$summary"
t_start=$(date +%s)
elapsed() { echo $(( $(date +%s) - t_start )); }
left() { echo $(( budget - $(elapsed) )); }
note() { echo "[$(elapsed) s] $*" | tee -a "$summary"; }

# ---------------------------------------------------------------- packages into a prefix
ndebs=0
if compgen -G ".device/debs/*.deb" >/dev/null; then
  for f in .device/debs/*.deb; do
    if command -v dpkg >/dev/null; then
      dpkg -x "$f" "$prefix" || { note "could not unpack $f"; continue; }
    else  # a .deb is an ar archive holding data.tar.*
      (tmp=$(mktemp -d) && cd "$tmp" && ar x "$OLDPWD/$f" && tar -xf data.tar.* -C "$prefix") || { note "could not unpack $f"; continue; }
    fi
    ndebs=$((ndebs + 1))
  done
  note "unpacked $ndebs package(s) from .device/debs into $prefix"
else
  note "no .device/debs: using the machine's own packages (run scripts/gpu-prepare.sh before the session)"
fi
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
export CMAKE_PREFIX_PATH="$prefix/usr:$prefix/usr/lib/$multiarch/cmake${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export CPATH="$prefix/usr/include:$prefix/usr/include/eigen3${CPATH:+:$CPATH}"
export LIBRARY_PATH="$prefix/usr/lib/$multiarch${LIBRARY_PATH:+:$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$prefix/usr/lib/$multiarch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# cuDNN: the system's first, then the one inside PyTorch's pip packages (nvidia/cudnn).
find_first() { find "$@" -not -path '/proc/*' 2>/dev/null | head -1; }
cudnn_inc=$(dirname "$(find_first /usr/local/cuda/include /usr/include /usr/local -name cudnn_version.h)" 2>/dev/null)
cudnn_lib=$(dirname "$(find_first /usr/local/cuda/lib64 /usr/lib /usr/local -name 'libcudnn.so*')" 2>/dev/null)
if [ ! -f "$cudnn_inc/cudnn_version.h" ] || [ -z "$cudnn_lib" ] || [ "$cudnn_lib" = . ]; then
  pip_cudnn=$(python3 -c 'import os, nvidia.cudnn as m; print(os.path.dirname(m.__file__) if m.__file__ else list(m.__path__)[0])' 2>/dev/null)
  if [ -n "$pip_cudnn" ]; then
    [ -f "$cudnn_inc/cudnn_version.h" ] || cudnn_inc="$pip_cudnn/include"
    { [ -z "$cudnn_lib" ] || [ "$cudnn_lib" = . ]; } && cudnn_lib="$pip_cudnn/lib"
  fi
fi
[ -f "$cudnn_inc/cudnn_version.h" ] || cudnn_inc=""
{ [ -n "$cudnn_lib" ] && [ "$cudnn_lib" != . ] && compgen -G "$cudnn_lib/libcudnn.so*" >/dev/null; } || cudnn_lib=""
[ -n "$cudnn_lib" ] && export LD_LIBRARY_PATH="$cudnn_lib:$LD_LIBRARY_PATH"
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
[ -n "$arch" ] || arch=90

{
  echo "== environment"
  echo "budget ${budget} s, quick ${quick}, jobs ${jobs}, build ${build}, prefix ${prefix}"
  echo "cuDNN include: ${cudnn_inc:-not found}; library: ${cudnn_lib:-not found}; CUDA architecture: ${arch}"
  echo "CMAKE_PREFIX_PATH=$CMAKE_PREFIX_PATH"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  for c in nvcc g++ cmake ninja python3; do printf '%s: ' "$c"; ($c --version 2>/dev/null | grep -m1 -iE 'release|version|[0-9]\.[0-9]') || echo missing; done
  echo "== nvidia-smi"
  nvidia-smi 2>&1 || echo "nvidia-smi failed"
  python3 -c 'import torch; print("torch", torch.__version__, "cuDNN", torch.backends.cudnn.version(), "device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")' 2>&1 | tail -1
} >> "$summary" 2>&1
if [ $unpack_only = 1 ]; then
  cat "$summary"
  exit 0
fi

# ---------------------------------------------------------------- configure and build
gen=Ninja
command -v ninja >/dev/null || gen="Unix Makefiles"
note "configure ($gen)"
cmake -S . -B "$build" -G "$gen" -DCMAKE_BUILD_TYPE=Release -DMAMMOCL_WITH_CUDA=ON -DMAMMOCL_WITH_DICOM=OFF \
  -DMAMMOCL_BUILD_TESTS=ON -DMAMMOCL_BUILD_EXAMPLES=$([ $examples = 1 ] && echo ON || echo OFF) \
  -DMAMMOCL_BUILD_BENCH=$([ $bench = 1 ] && echo ON || echo OFF) \
  ${cudnn_inc:+-DCUDNN_INCLUDE_DIR="$cudnn_inc"} ${cudnn_lib:+-DCUDNN_LIBRARY_DIR="$cudnn_lib"} \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" > "$out/configure.log" 2>&1
configure_rc=$?
note "configure exit $configure_rc"
if [ $configure_rc != 0 ]; then
  tail -30 "$out/configure.log"
  exit 1
fi

build_rc=0 examples_rc=skipped bench_rc=skipped
: > "$out/build.log"
build_target() {  # build_target <label> <targets...>
  local label=$1; shift
  note "build $label: $*"
  timeout $(( $(left) > 60 ? $(left) - 30 : 30 )) cmake --build "$build" --parallel "$jobs" --target "$@" >> "$out/build.log" 2>&1
}
build_target "GPU tests" mammocl_gpu_tests
build_rc=$?
note "GPU tests build exit $build_rc"
if [ $bench = 1 ]; then
  build_target "GPU benchmark" bench_train_step_gpu
  bench_rc=$?
  note "GPU benchmark build exit $bench_rc"
fi
if [ $examples = 1 ]; then
  # Every target of examples/ (the examples accept --device cuda when built with the CUDA backend).
  if [ "$gen" = Ninja ]; then
    build_target examples examples/all
  else
    build_target examples all
  fi
  examples_rc=$?
  note "examples build exit $examples_rc"
fi
if [ $build_rc != 0 ]; then
  grep -m 20 -E 'error|Error' "$out/build.log"
fi

# ---------------------------------------------------------------- tests
ctest_rc=skipped
if [ $build_rc = 0 ]; then
  note "nvidia-smi before the tests:"
  nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu,temperature.gpu --format=csv 2>&1 | tee -a "$summary"
  test_budget=$(( $(left) - ( bench == 1 ? 150 : 20 ) ))
  [ $test_budget -lt 60 ] && test_budget=60
  note "ctest -L gpu (timeout ${test_budget} s)"
  junit=()
  ctest --help 2>/dev/null | grep -q -- --output-junit && junit=(--output-junit "$out/ctest-gpu.xml")  # CMake >= 3.21
  (cd "$build" && timeout "$test_budget" ctest -L gpu --output-on-failure --timeout "$test_budget" "${junit[@]}") \
    > "$out/ctest-gpu.log" 2>&1
  ctest_rc=$?
  tail -15 "$out/ctest-gpu.log" | tee -a "$summary"
  note "ctest exit $ctest_rc"
fi

# ---------------------------------------------------------------- the examples on the GPU
# The examples' own device checks (example_<prog>_device, tests/examples CMake): with a GPU present each
# training program's smoke run must succeed with --device cuda. Up to 90 s, leaving the benchmark 150 s.
examples_run_rc=skipped
if [ $examples = 1 ] && [ "$examples_rc" = 0 ]; then
  ex_budget=$(( $(left) - ( bench == 1 ? 150 : 20 ) ))
  [ $ex_budget -gt 90 ] && ex_budget=90
  if [ $ex_budget -ge 20 ]; then
    note "examples with --device cuda: ctest -R '^example_.*_device\$' (timeout ${ex_budget} s)"
    (cd "$build" && timeout "$ex_budget" ctest -R '^example_.*_device$' --output-on-failure --timeout "$ex_budget") \
      > "$out/examples.log" 2>&1
    examples_run_rc=$?
    grep -E 'tests passed|tests failed|Failed|Passed' "$out/examples.log" | tail -8 | tee -a "$summary"
    note "examples on the GPU exit $examples_run_rc"
  else
    note "examples on the GPU skipped: ${ex_budget} s left for them"
  fi
fi

# ---------------------------------------------------------------- benchmark against PyTorch
compare_rc=skipped
if [ $bench = 1 ] && [ "$bench_rc" = 0 ]; then
  remaining=$(( $(left) - 20 ))
  if [ $remaining -lt 60 ]; then
    note "benchmark comparison skipped: ${remaining} s left in the budget"
  elif ! python3 -c 'import torch, torchvision' >/dev/null 2>&1; then
    note "benchmark comparison skipped: python3 cannot import torch and torchvision; ours alone:"
    timeout "$remaining" "$build/bench/gpu/bench_train_step_gpu" --steps 10 --warmup 3 2>&1 | tee "$out/compare.log" | tail -4 | tee -a "$summary"
    compare_rc=$?
  else
    note "benchmark comparison, ${remaining} s"
    PYTHONUNBUFFERED=1 timeout $(( remaining + 10 )) python3 bench/gpu/compare_pytorch_gpu.py \
      --bench "$build/bench/gpu/bench_train_step_gpu" $([ $quick = 1 ] && echo --quick) \
      --time-budget "$remaining" --timeout 240 --json-out "$out/compare.json" > "$out/compare.log" 2>&1
    compare_rc=$?
    sed -n '/^DenseNet-121 on/,$p' "$out/compare.log" | tee -a "$summary"
  fi
fi

# build.log may be long: keep its last 8 MiB (16 MiB per file come back).
if [ "$(stat -c %s "$out/build.log" 2>/dev/null || echo 0)" -gt 8388608 ]; then
  tail -c 8388608 "$out/build.log" > "$out/build.log.tmp" && mv "$out/build.log.tmp" "$out/build.log"
fi
note "done: configure $configure_rc, GPU tests build $build_rc, benchmark build $bench_rc, examples build $examples_rc, ctest $ctest_rc, examples on the GPU $examples_run_rc, comparison $compare_rc; $(elapsed) s of $budget"
[ "$build_rc" = 0 ] && [ "$ctest_rc" = 0 ]
