#!/usr/bin/env bash
# Command-line checks of lut_invariance_study (ctest example_lut_invariance_study_check):
#   lut_invariance_study_check.sh <program> <work dir> <default shared data dir>
# 1. bad input: one clear line on stderr and exit status 2, before any long work;
# 2. a study interrupted after its first run continues where it stopped, and a folder holding a study with
#    other settings is refused (then --fresh starts over);
# 3. --init with a checkpoint of the same model loads it; one of another architecture is refused;
# 4. with the shared data: a tiny study on the real mini-MIAS images, with the linear probe on the phantom.
set -euo pipefail
prog=$1
work=$2
data=${MAMMOCL_DATA:-$3}
rm -rf "$work"
mkdir -p "$work"
fails=0

# expect_error <fragment> <args...>: exit status 2 and the fragment in stderr.
expect_error() {
  local fragment=$1
  shift
  local status=0
  "$prog" "$@" >"$work/out.txt" 2>"$work/err.txt" || status=$?
  if [[ $status -ne 2 ]] || ! grep -qF -- "$fragment" "$work/err.txt"; then
    echo "FAIL: $* -> status $status, stderr: $(cat "$work/err.txt")  (expected status 2 and: $fragment)"
    fails=$((fails + 1))
  else
    echo "ok: $* -> $(head -c 160 "$work/err.txt")"
  fi
}

tiny=(--images 24 --datasets augmented --strategies ce --epochs 1 --replicates 10 --permutations 5 --tsne-points 0
      --per-roi 2 --per-image 2 --quiet)

echo "== bad input"
mkdir -p "$work/empty"
expect_error "unknown option '--bogus'" --bogus
expect_error "--data: '$work/nowhere' does not exist; expected 'phantom' or a mini-MIAS, CBIS-DDSM or INbreast folder" --data "$work/nowhere"
expect_error "no dataset recognised in the folder $work/empty; looked for Info.txt (mini-MIAS)" --data "$work/empty"
expect_error "--model: unknown model 'resnet50'; expected small or densenet121" --model resnet50
expect_error "--patch 8 is too small for --model small: its feature map needs at least 13x13 pixels" --patch 8
expect_error "--patch 16 is too small for --model densenet121: its feature map needs at least 29x29 pixels" --model densenet121 --patch 16
expect_error "--patch (256) must not exceed --window (128)" --patch 256
expect_error "--init: '$work/none.safetensors' is not a file" --init "$work/none.safetensors"
expect_error "--smoke fixes the sizes, the datasets and the epochs" --smoke --epochs 3
expect_error "--images sets the number of phantom mammograms; with --data $work/empty" --data "$work/empty" --images 20
expect_error "--probe-epochs needs --probe-data" --probe-epochs 5
expect_error "--probe-data is the training data (phantom)" --probe-data phantom
expect_error "--datasets: unknown dataset 'mixed-0'" --datasets mixed-0
expect_error "--strategies: unknown strategy 'svm'" --strategies ce,svm
expect_error "--epochs expects an integer, got 'two'" --epochs two
expect_error "--batch needs a value" --batch
expect_error "--datasets: 'augmented' is listed twice" --datasets augmented,augmented
touch "$work/file"
expect_error "cannot create the output folder '$work/file/out'" --out "$work/file/out"

echo "== resume"
"$prog" "${tiny[@]}" --strategies ce,mmd --out "$work/study" >"$work/first.txt"
grep -F "augmented" "$work/first.txt" | grep -F "best validation AUC" >/dev/null
# Interrupt-like state: drop the second run's folder, as if the study had stopped after the first run.
rm -rf "$work/study/runs/augmented/mmd"
"$prog" "${tiny[@]}" --strategies ce,mmd --out "$work/study" >"$work/second.txt"
grep -E "^augmented +ce .*continued from an earlier run" "$work/second.txt" >/dev/null ||
  { echo "FAIL: the finished run was not reloaded"; cat "$work/second.txt"; fails=$((fails + 1)); }
if grep -E "^augmented +mmd .*continued" "$work/second.txt" >/dev/null; then
  echo "FAIL: the missing run was not trained again"; fails=$((fails + 1))
fi
# The reloaded run gives the same test AUC as the first time.
first_auc=$(grep -E '^\| augmented \|' "$work/first.txt" | head -1 | cut -d'|' -f3)
second_auc=$(grep -E '^\| augmented \|' "$work/second.txt" | head -1 | cut -d'|' -f3)
if [[ "$first_auc" != "$second_auc" ]]; then
  echo "FAIL: CE's AUC changed after resuming: '$first_auc' vs '$second_auc'"; fails=$((fails + 1))
else
  echo "ok: resumed study, CE AUC unchanged ($first_auc)"
fi
expect_error "holds a study with other settings: epochs was 1, now 2; use another --out, or add --fresh" \
  "${tiny[@]}" --epochs 2 --out "$work/study"
"$prog" "${tiny[@]}" --epochs 2 --fresh --out "$work/study" >"$work/fresh.txt"
if grep -F "continued from an earlier run" "$work/fresh.txt" >/dev/null; then
  echo "FAIL: --fresh reused a run"; fails=$((fails + 1))
else
  echo "ok: --fresh started over"
fi

echo "== --init"
ckpt="$work/study/runs/augmented/ce/best.safetensors"
"$prog" "${tiny[@]}" --init "$ckpt" --out "$work/init" >"$work/init.txt"
grep -F -- "--init $ckpt:" "$work/init.txt" | grep -F "tensors loaded" | grep -F "input as stored (a MammoCL checkpoint)" \
  >/dev/null || { echo "FAIL: --init did not report the loaded tensors"; cat "$work/init.txt"; fails=$((fails + 1)); }
# The same weights without the trainer's metadata key stand for a converted torchvision file: its input is
# normalised with ImageNet's grey statistics.
LC_ALL=C sed 's/"strategy"/"strategx"/' "$ckpt" >"$work/torchvision_like.safetensors"
"$prog" "${tiny[@]}" --init "$work/torchvision_like.safetensors" --out "$work/init_tv" >"$work/init_tv.txt"
grep -F "input normalised (x - 0.449) / 0.226 (torchvision ImageNet weights)" "$work/init_tv.txt" >/dev/null ||
  { echo "FAIL: a torchvision-like --init was not normalised"; cat "$work/init_tv.txt"; fails=$((fails + 1)); }
grep -F "(input normalised (x - 0.449) / 0.226)" "$work/init_tv/results.md" >/dev/null ||
  { echo "FAIL: results.md does not say the input was normalised"; fails=$((fails + 1)); }
echo "ok: --init with a MammoCL checkpoint (input as stored) and a torchvision-like file (normalised)"
expect_error "--init: load_state: key 'features.conv0.weight' has shape (16,1,7,7)" --model densenet121 --init "$ckpt" \
  --out "$work/init121"

if [[ -f "$data/mini-mias/Info.txt" ]]; then
  echo "== mini-MIAS (real images) with the linear probe on the phantom"
  "$prog" --data "$data/mini-mias" --datasets augmented --strategies ce --epochs 1 --replicates 10 --permutations 5 \
    --tsne-points 0 --per-roi 2 --per-image 1 --probe-data phantom --probe-epochs 2 --quiet \
    --out "$work/mias" >"$work/mias.txt"
  for want in "LUT invariance study on mini-MIAS at" "Patches per class" "test (A and B)" \
              "Linear probe on the phantom"; do
    grep -F "$want" "$work/mias.txt" >/dev/null || { echo "FAIL: mini-MIAS output lacks '$want'"; fails=$((fails + 1)); }
  done
  echo "ok: mini-MIAS study: $(head -1 "$work/mias.txt" | cut -c1-200)"
else
  echo "skipped: no mini-MIAS under $data (set MAMMOCL_DATA)"
fi

if [[ $fails -ne 0 ]]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all checks passed"
