#!/usr/bin/env bash
# The README's main command. Installs the dependencies, builds the examples and runs the poster's study on
# the built-in phantom (examples/lut_invariance_study with its defaults): paired A/B patches (domain B = the
# per-image sigmoid VOI LUT), the training sets augmented, mixed 1-4 and mixed down-sampled 0.6-0.9, the
# small DenseNet trained with CE, SupContr and SupContr+CE on each, evaluation on both domains, the tables on
# stdout and results.md / report.html / manifest.json in $build/study. Rerunning continues an interrupted
# study (finished runs are reloaded, not trained again). Extra arguments go to the program, e.g.
#   bash scripts/demo.sh --strategies ce,supcon_linear,supcon_finetune,dann,mmd
#   bash scripts/demo.sh --data ../shared/data/mini-mias --out build/study-mias
# (`build/examples/lut_invariance_study --help` lists every flag.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${MAMMOCL_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMAMMOCL_BUILD_TESTS=OFF -DMAMMOCL_BUILD_EXAMPLES=ON \
  -DMAMMOCL_BUILD_BENCH=OFF -DMAMMOCL_WITH_DICOM=ON
cmake --build "$build" --target lut_invariance_study --parallel "$(nproc)"
out_given=0
for arg in "$@"; do [[ $arg == --out ]] && out_given=1; done
if [[ $out_given -eq 1 ]]; then
  "$build/examples/lut_invariance_study" "$@"
else
  "$build/examples/lut_invariance_study" --out "$build/study" "$@"
fi
