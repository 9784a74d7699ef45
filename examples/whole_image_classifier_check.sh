#!/usr/bin/env bash
# ctest driver for whole_image_classifier's command line (docs/whole_image_classifier_cli.md):
#  1. bad input: each case must exit 2 with one line holding the documented message;
#  2. resume: a run stopped twice (--max-steps, as if killed) and restarted ends with the same
#     best.safetensors, byte for byte, and the same last.safetensors tensors as an uninterrupted run;
#     evaluate and predict work on its checkpoint;
#  3. real data: when the shared mini-MIAS is present, a tiny run (train, evaluate, predict image files).
#   whole_image_classifier_check.sh <program> <work dir> <default shared data dir>   ($MAMMOCL_DATA wins)
set -euo pipefail
exe=$1 work=$2
data=${MAMMOCL_DATA:-${3:-}}
rm -rf "$work"
mkdir -p "$work"
log=$work/out.txt
checks=0

# expect_fail <exit code> <message fragment> <args...>
expect_fail() {
  local code=$1 fragment=$2
  shift 2
  local rc=0
  "$exe" "$@" > "$log" 2>&1 || rc=$?
  if [ "$rc" -ne "$code" ]; then
    echo "FAILED: '$*' exited $rc, expected $code; output:"; cat "$log"; exit 1
  fi
  if ! grep -qF -- "$fragment" "$log"; then
    echo "FAILED: '$*' did not say: $fragment"; echo "it said:"; cat "$log"; exit 1
  fi
  checks=$((checks + 1))
  echo "ok  exit $code: $* -> $fragment"
}

tensor_bytes() { local n; n=$(od -An -t u8 -N 8 "$1" | tr -d ' '); tail -c +$((9 + n)) "$1"; }

echo "== bad input"
mkdir -p "$work/empty"
expect_fail 2 "missing command; expected train, evaluate, predict or --smoke"
expect_fail 2 "unknown command 'trian'" trian --data phantom --out "$work/x"
expect_fail 2 "train: unknown option '--epochs'" train --data phantom --out "$work/x" --epochs 3
expect_fail 2 "predict: --epochs1 is not an option of predict" predict --epochs1 3
expect_fail 2 "--epochs1 needs a value" train --data phantom --out "$work/x" --epochs1
expect_fail 2 "--height expects an integer, got '1.5'" train --data phantom --out "$work/x" --height 1.5
expect_fail 2 "--batch must be at least 2, got 1" train --data phantom --out "$work/x" --batch 1
expect_fail 2 "--model must be small or densenet121, got 'resnet'" train --data phantom --out "$work/x" --model resnet
expect_fail 2 "--domain must be A, B or both, got 'C'" train --data phantom --out "$work/x" --domain C
expect_fail 2 "train needs --data phantom|DIR" train --out "$work/x"
expect_fail 2 "train needs --out DIR" train --data phantom
expect_fail 2 "evaluate needs --checkpoint FILE" evaluate --data phantom --out "$work/x"
expect_fail 2 "--data '$work/missing' does not exist" train --data "$work/missing" --out "$work/x"
expect_fail 2 "no dataset recognised in the folder $work/empty" train --data "$work/empty" --out "$work/x"
expect_fail 2 "--checkpoint '$work/none.safetensors' does not exist" evaluate --data phantom --checkpoint "$work/none.safetensors" --out "$work/x"
expect_fail 2 "does not fit the small model: the minimum is 13 pixels on each side" train --data phantom --out "$work/x" --height 12 --width 64
expect_fail 2 "does not fit the densenet121 model: the minimum is 29 pixels on each side" train --data phantom --out "$work/x" --model densenet121 --height 28 --width 64
expect_fail 2 "--smoke cannot be combined with the command 'train'" train --smoke --out "$work/x"
expect_fail 2 "--epochs1 and --epochs2 are both 0: nothing to train" train --data phantom --out "$work/x" --epochs1 0 --epochs2 0
expect_fail 2 "predict needs --data phantom|DIR or image files" predict --checkpoint "$0" --out "$work/p.csv"
expect_fail 2 "image '$work/none.pgm' does not exist" predict --checkpoint "$0" --out "$work/p.csv" "$work/none.pgm"
expect_fail 2 "the train split of --data phantom has no image without cancer (7 images, --seed 1); use more --images" train --data phantom --out "$work/x" --images 12 --height 32 --width 24

echo "== resume after two stops (--max-steps) equals an uninterrupted run"
common=(train --data phantom --images 40 --height 64 --width 48 --epochs1 1 --epochs2 2 --batch 4 --checkpoint-every 2
        --threads 2 --quiet)
"$exe" "${common[@]}" --out "$work/reference" > "$work/reference.txt"
grep -F "test AUC" "$work/reference.txt"
expect_fail 3 "stopped after 7 training steps (--max-steps)" "${common[@]}" --out "$work/resumed" --max-steps 7
expect_fail 3 "resuming from $work/resumed/last.safetensors" "${common[@]}" --out "$work/resumed" --max-steps 11
"$exe" "${common[@]}" --out "$work/resumed" > "$work/resumed.txt"
grep -qF "resuming from $work/resumed/last.safetensors" "$work/resumed.txt" || { echo "FAILED: the last run did not resume"; exit 1; }
cmp "$work/reference/best.safetensors" "$work/resumed/best.safetensors" ||
  { echo "FAILED: best.safetensors of the resumed run differs from the uninterrupted run's"; exit 1; }
cmp <(tensor_bytes "$work/reference/last.safetensors") <(tensor_bytes "$work/resumed/last.safetensors") ||
  { echo "FAILED: the tensors of last.safetensors differ after two stops and a resume"; exit 1; }
final_lines() { tail -n 2 "$1" | sed 's/: [^ ]*best.safetensors$//'; }   # the folders differ
[ "$(final_lines "$work/reference.txt")" = "$(final_lines "$work/resumed.txt")" ] ||
  { echo "FAILED: the final lines differ:"; tail -n 2 "$work/reference.txt" "$work/resumed.txt"; exit 1; }
checks=$((checks + 1))
echo "ok  stopped twice (7, then 11 more steps, mid-epoch), resumed: best.safetensors byte-identical, last.safetensors tensors equal, same final lines"
expect_fail 2 "holds a run with other settings (height: 64, now 72)" train --data phantom --images 40 --height 72 --width 48 \
  --out "$work/resumed"

echo "== checkpoints of another architecture are refused before any work"
best=$work/reference/best.safetensors
expect_fail 2 "is not a whole-image checkpoint of --model densenet121" evaluate --data phantom --checkpoint "$best" --model densenet121 --out "$work/x"
expect_fail 2 "cannot load the encoder from the patch checkpoint" train --data phantom --out "$work/x" --encoder "$best"
expect_fail 2 "predict takes either --data or image files, not both" predict --checkpoint "$best" --out "$work/p.csv" --data phantom "$best"

echo "== evaluate and predict on the reference run"
"$exe" evaluate --data phantom --checkpoint "$best" --out "$work/evaluate" --replicates 200 --quiet > "$work/evaluate.txt"
cat "$work/evaluate.txt"
for f in metrics.json report.html predictions.csv; do
  [ -s "$work/evaluate/$f" ] || { echo "FAILED: evaluate did not write $f"; exit 1; }
done
grep -qF '"auc_a"' "$work/evaluate/metrics.json" && grep -qF "<svg" "$work/evaluate/report.html" ||
  { echo "FAILED: metrics.json or report.html lacks the per-domain AUC or the ROC plot"; exit 1; }
"$exe" predict --data phantom --checkpoint "$best" --out "$work/predict.csv" --quiet > /dev/null
rows=$(wc -l < "$work/predict.csv")
[ "$rows" -eq 41 ] && [ "$(head -n 1 "$work/predict.csv")" = "path,domain,p_cancer" ] ||
  { echo "FAILED: predict --data phantom wrote $rows lines, expected the header and 40 rows"; exit 1; }
checks=$((checks + 1))
echo "ok  evaluate wrote metrics.json, report.html (ROC), predictions.csv; predict wrote 40 rows"

echo "== mini-MIAS"
if [ -n "$data" ] && [ -f "$data/mini-mias/Info.txt" ]; then
  mias=$data/mini-mias
  "$exe" train --data "$mias" --images 40 --height 64 --width 48 --epochs1 1 --epochs2 1 --batch 4 --out "$work/mias" \
    --quiet > "$work/mias.txt"
  cat "$work/mias.txt"
  grep -qF "test AUC" "$work/mias.txt" || { echo "FAILED: the mini-MIAS run did not report a test AUC"; exit 1; }
  "$exe" evaluate --data "$mias" --checkpoint "$work/mias/best.safetensors" --out "$work/mias-eval" --replicates 200 \
    --quiet > /dev/null
  [ -s "$work/mias-eval/metrics.json" ] || { echo "FAILED: evaluate on mini-MIAS wrote no metrics.json"; exit 1; }
  mapfile -t files < <(find "$mias" -maxdepth 1 -name '*.pgm' | sort | head -n 2)
  "$exe" predict --checkpoint "$work/mias/best.safetensors" --out "$work/mias.csv" --domain both --quiet "${files[@]}" > /dev/null
  [ "$(wc -l < "$work/mias.csv")" -eq 5 ] || { echo "FAILED: predict on 2 image files, both domains, wrote no 4 rows"; exit 1; }
  checks=$((checks + 1))
  echo "ok  mini-MIAS: train, evaluate, predict on 2 PGM files in both domains"
else
  echo "skipped: no mini-MIAS at '${data:-<unset>}/mini-mias' (set MAMMOCL_DATA to the shared data folder)"
fi
echo "all $checks checks passed"
