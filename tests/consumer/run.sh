#!/usr/bin/env bash
# ctest driver: installs the build tree into a prefix, then configures, builds and runs tests/consumer
# against it with find_package(mammocl).
set -euo pipefail
build=$1 src=$2
prefix="$build/consumer-prefix"
rm -rf "$prefix" "$build/consumer-build"
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S "$src/tests/consumer" -B "$build/consumer-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$build/consumer-build" >/dev/null
"$build/consumer-build/consumer"
