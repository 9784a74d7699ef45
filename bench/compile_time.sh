#!/usr/bin/env bash
# Compile time of a user's program: bench/compile_probe.cpp (builds and trains DenseNet-121 through the
# umbrella header "mammocl/mammocl.hpp") compiled and linked the way a user would, at -O2, with g++ (12 by
# default), no ccache, no precompiled header. Reports wall seconds and the compiler's peak memory (maximum
# resident set size of the largest compiler process, from /usr/bin/time -v) for each run and their median.
#
#   bench/compile_time.sh [--runs N] [--cxx COMPILER] [--target SECONDS] [-- extra compiler flags]
#
# Exit status: 0 when the median is within the target (default 10 s), 1 when it is over, 2 on error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
runs=3
cxx="${CXX:-g++}"
target=10
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --cxx) cxx="$2"; shift 2 ;;
    --target) target="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compile_time.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "compile_time.sh: --runs needs a positive integer" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "compile_time.sh: needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }
# A ccache masquerading as the compiler would time a cache hit, not a compilation.
real_cxx="$(readlink -f "$(command -v "$cxx")")"
[[ "$(basename "$real_cxx")" == ccache ]] && { echo "compile_time.sh: $cxx is ccache; pass the real compiler with --cxx" >&2; exit 2; }

# The flags a user's CMake project gets from mammocl::mammocl (C++20, OpenMP, Eigen and nlohmann_json
# include directories), plus -O2. Eigen's and nlohmann_json's include directories come from pkg-config when
# it knows them, else the Debian locations.
eigen_flags="$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)"
json_flags="$(pkg-config --cflags nlohmann_json 2>/dev/null || true)"
# shellcheck disable=SC2206
flags=(-std=c++20 -O2 -fopenmp -I"$repo/include" $eigen_flags $json_flags "${extra[@]}")

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "compiler: $("$cxx" --version | head -n1)"
echo "command:  $cxx ${flags[*]} bench/compile_probe.cpp -o compile_probe"
echo "machine:  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"

secs=()
mems=()
for ((i = 1; i <= runs; ++i)); do
  if ! /usr/bin/time -v -o "$work/time.txt" "$cxx" "${flags[@]}" "$here/compile_probe.cpp" -o "$work/compile_probe" \
      2>"$work/cc.txt"; then
    cat "$work/cc.txt" "$work/time.txt" >&2
    echo "compile_time.sh: compilation failed" >&2
    exit 2
  fi
  wall="$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")"
  # h:mm:ss or m:ss.ss -> seconds
  s="$(awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }' <<<"$wall")"
  kib="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")"
  user="$(awk -F': ' '/User time/ {print $2}' "$work/time.txt")"
  printf 'run %d: %.2f s wall (%.2f s user), compiler peak RSS %d MiB\n' "$i" "$s" "$user" $((kib / 1024))
  secs+=("$s")
  mems+=("$kib")
done
# The probe must also work, not just compile: two training steps on a small input.
"$work/compile_probe" 2 64 >"$work/run.txt" || { cat "$work/run.txt" >&2; echo "compile_time.sh: the probe failed to run" >&2; exit 2; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med_s="$(median "${secs[@]}")"
med_kib="$(median "${mems[@]}")"
printf 'median: %.2f s, compiler peak RSS %.0f MiB (target <= %s s)\n' "$med_s" "$(awk -v k="$med_kib" 'BEGIN { print k / 1024 }')" "$target"
awk -v s="$med_s" -v t="$target" 'BEGIN { exit !(s <= t) }' && exit 0
echo "compile_time.sh: over the ${target} s target" >&2
exit 1
