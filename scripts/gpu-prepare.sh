#!/usr/bin/env bash
# Run on the CPU machine, from the checkout, before a GPU session: puts every Debian package the GPU build
# needs into .device/debs (git-ignored; the device call carries .device): what ../shared/device/prepare.sh
# downloads (Eigen, Boost.Test, nlohmann-json) plus libpng and zlib, which the top-level CMakeLists.txt
# requires. Then on the GPU machine: bash scripts/gpu-check.sh --quick (docs/gpu_testing.md).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
shared=${MAMMOCL_SHARED_DEVICE:-../shared/device}
[ -f "$shared/prepare.sh" ] || { echo "gpu-prepare.sh: $shared/prepare.sh not found (set MAMMOCL_SHARED_DEVICE)" >&2; exit 1; }
bash "$shared/prepare.sh"
(cd .device/debs && apt-get download libpng-dev libpng16-16 zlib1g-dev >/dev/null)
ls .device/debs
