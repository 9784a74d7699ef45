#!/usr/bin/env bash
# Command-line checks of examples/patch_classifier (ctest example_patch_classifier_check):
#   1. bad input: exit status 2, one line on stderr, the exact message (grep -F), before any long work;
#   2. resume: train 1 epoch, rerun with --epochs 2 into the same --out: it says it resumed and log.jsonl
#      ends with 2 epochs; evaluate and predict (a split, and an IMAGE file) on that run;
#   3. real data (when the shared data are there): a tiny mini-MIAS train + evaluate that completes and
#      prints the per-class counts.
# usage: patch_classifier_check.sh PROGRAM WORK_DIR [SHARED_DATA_DIR]   ($MAMMOCL_DATA wins when set)
# One thread per run, so that the timing does not depend on how busy the machine's other core is.
set -euo pipefail

prog=$1
work=$2
data=${MAMMOCL_DATA:-${3:-}}
rm -rf "$work"
mkdir -p "$work"
t0=$SECONDS

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# expect_error CODE FRAGMENT ARGS...: the program exits with CODE and its stderr is one line holding FRAGMENT.
expect_error() {
  local code=$1 fragment=$2
  shift 2
  local rc=0
  "$prog" "$@" >"$work/stdout" 2>"$work/stderr" || rc=$?
  [[ $rc -eq $code ]] || fail "'$*' exited with $rc, expected $code; stderr: $(cat "$work/stderr")"
  grep -qF -- "$fragment" "$work/stderr" || fail "'$*': stderr lacks '$fragment'; it says: $(cat "$work/stderr")"
  [[ $(wc -l <"$work/stderr") -eq 1 ]] || fail "'$*': stderr is not one line: $(cat "$work/stderr")"
  echo "ok: exit $code: $fragment"
}

# --- 1. bad input that needs no run --------------------------------------------------------------------
mkdir -p "$work/empty"
expect_error 2 "patch_classifier: unknown command 'fit'; expected train, evaluate, predict, probe, --smoke or --help" fit
expect_error 2 "patch_classifier: expected a command: train, evaluate, predict, probe, --smoke or --help"
expect_error 2 "patch_classifier: unknown option '--epoch' (patch_classifier train --help lists the options)" \
  train --data phantom --out "$work/x" --epoch 2
expect_error 2 "patch_classifier: --out needs a value" train --data phantom --out
expect_error 2 "patch_classifier: train needs --data phantom|DIR" train --out "$work/x"
expect_error 2 "patch_classifier: --epochs expects an integer, got 'two'" train --data phantom --out "$work/x" --epochs two
expect_error 2 "patch_classifier: --batch expects an integer, got '8.5'" train --data phantom --out "$work/x" --batch 8.5
expect_error 2 "patch_classifier: --batch must be at least 2, got 1" train --data phantom --out "$work/x" --batch 1
expect_error 2 "patch_classifier: --lr expects a number, got 'fast'" train --data phantom --out "$work/x" --lr fast
expect_error 2 "patch_classifier: unknown strategy 'simclr'; expected ce, supcon_linear, supcon_finetune, dann or mmd" \
  train --data phantom --out "$work/x" --strategy simclr
expect_error 2 "patch_classifier: --model must be small or densenet121, got 'resnet50'" \
  train --data phantom --out "$work/x" --model resnet50
expect_error 2 "patch_classifier: --variant must be augmented, mixed or down-R with 0 < R < 1, got 'down-1'" \
  train --data phantom --out "$work/x" --variant down-1
expect_error 2 "patch_classifier: --data: '$work/nowhere' does not exist" train --data "$work/nowhere" --out "$work/x"
expect_error 2 "patch_classifier: --data: open_dataset" train --data "$work/empty" --out "$work/x"
expect_error 2 "no dataset recognised in the folder $work/empty; looked for Info.txt (mini-MIAS)" \
  train --data "$work/empty" --out "$work/x"
expect_error 2 "patch_classifier: --patch 12 is smaller than the small model's minimum input side 13" \
  train --data phantom --out "$work/x" --patch 12
expect_error 2 "patch_classifier: --patch 28 is smaller than the densenet121 model's minimum input side 29" \
  train --data phantom --out "$work/x" --model densenet121 --patch 28
expect_error 2 "patch_classifier: --patch (64) must not exceed --window (48)" \
  train --data phantom --out "$work/x" --patch 64 --window 48
expect_error 2 "patch_classifier: --patch (32) must not exceed --window (16)" train --data phantom --out "$work/x" --window 16
expect_error 2 "patch_classifier: --epochs2 applies to supcon_linear and supcon_finetune only, not ce" \
  train --data phantom --out "$work/x" --epochs2 2
expect_error 2 "patch_classifier: --strategy is not an option of evaluate" \
  evaluate --checkpoint "$work/x.safetensors" --out "$work/x" --strategy ce
expect_error 2 "patch_classifier: --epochs is given twice" train --data phantom --out "$work/x" --epochs 1 --epochs 2
expect_error 2 "patch_classifier: evaluate needs --checkpoint FILE" evaluate --out "$work/x"
expect_error 2 "patch_classifier: --checkpoint: '$work/none.safetensors' does not exist" \
  evaluate --checkpoint "$work/none.safetensors" --out "$work/x"
expect_error 2 "patch_classifier: --init: '$work/none.safetensors' does not exist" \
  train --data phantom --out "$work/x" --init "$work/none.safetensors"
[[ ! -e "$work/x" ]] || fail "a refused command created its output folder $work/x"

# --- 2. a small phantom run, resumed with one more epoch ---------------------------------------------------
run=$work/run
"$prog" train --data phantom --images 10 --window 64 --patch 32 --per-roi 2 --per-image 2 --batch 8 --epochs 1 \
  --threads 1 --quiet --out "$run" >"$work/train1.txt"
[[ $(wc -l <"$run/log.jsonl") -eq 1 ]] || fail "the first run logged $(wc -l <"$run/log.jsonl") epochs, expected 1"
for f in best.safetensors last.safetensors patch_classifier.json domains.json lut_params.tsv; do
  [[ -s "$run/$f" ]] || fail "train did not write $run/$f"
done
# The rerun names only what changes: the other settings come from the run's patch_classifier.json.
"$prog" train --data phantom --epochs 2 --threads 1 --quiet --out "$run" >"$work/train2.txt"
grep -qF "resuming from $run/last.safetensors (stage 1, 1 epoch done); continuing to 2 epochs" "$work/train2.txt" ||
  fail "the rerun did not say it resumed: $(cat "$work/train2.txt")"
grep -qF "ce (resumed): best validation AUC" "$work/train2.txt" || fail "the rerun's summary lacks '(resumed)'"
[[ $(wc -l <"$run/log.jsonl") -eq 2 ]] || fail "after the resume log.jsonl has $(wc -l <"$run/log.jsonl") epochs, expected 2"
grep -q '"epoch":2' <(tail -n 1 "$run/log.jsonl") || fail "the last line of log.jsonl is not epoch 2"
echo "ok: resumed from 1 to 2 epochs; log.jsonl holds 2 epochs"

# Bad input against the run: contradictions, another architecture.
expect_error 2 "patch_classifier: --window 48 contradicts the run in $run (window 64)" \
  train --data phantom --out "$run" --window 48 --patch 32
expect_error 2 "patch_classifier: --epochs 1 is fewer than the 2 epochs the run in $run has done; use --no-resume" \
  train --data phantom --out "$run" --epochs 1
expect_error 2 "patch_classifier: --strategy dann contradicts the run in $run (strategy ce); use --no-resume or another --out" \
  train --data phantom --out "$run" --strategy dann
expect_error 2 "patch_classifier: --window 128 contradicts the checkpoint's run ($run/patch_classifier.json) (window 64)" \
  evaluate --checkpoint "$run/best.safetensors" --out "$work/eval" --window 128
expect_error 2 "patch_classifier: --data $work/empty contradicts the checkpoint's run ($run/patch_classifier.json) (data phantom)" \
  evaluate --checkpoint "$run/best.safetensors" --out "$work/eval" --data "$work/empty"
expect_error 2 "--init $run/best.safetensors: load_state: key 'features.conv0.weight' has shape (16,1,7,7)" \
  train --data phantom --out "$work/x" --model densenet121 --init "$run/best.safetensors"
expect_error 2 "patch_classifier: predict takes either --data or IMAGE files, not both" \
  predict --checkpoint "$run/best.safetensors" --out "$work/p.csv" --data phantom "$work/patch.pgm"
expect_error 2 "patch_classifier: --split selects patches of --data; it does not apply to IMAGE files" \
  predict --checkpoint "$run/best.safetensors" --out "$work/p.csv" --split all "$work/patch.pgm"
cp "$run/best.safetensors" "$work/alone.safetensors"
expect_error 2 "patch_classifier: --checkpoint $work/alone.safetensors: no patch_classifier.json beside it" \
  evaluate --checkpoint "$work/alone.safetensors" --out "$work/eval"

# Evaluate and predict from the checkpoint alone.
"$prog" evaluate --checkpoint "$run/best.safetensors" --out "$work/eval" --replicates 50 --threads 1 --quiet \
  >"$work/eval.txt"
for f in metrics.json report.html; do [[ -s "$work/eval/$f" ]] || fail "evaluate did not write $f"; done
grep -qF "AUC (A and B)" "$work/eval.txt" || fail "evaluate printed no AUC"
"$prog" predict --checkpoint "$run/best.safetensors" --out "$work/pred.csv" --threads 1 --quiet >/dev/null
head -n 1 "$work/pred.csv" | grep -qxF \
  "source,patch,domain,label,p_normal,p_benign_calcification,p_malignant_calcification,p_benign_mass,p_malignant_mass" ||
  fail "predictions.csv has another header"
rows=$(python3 -c "import json; print(json.load(open('$work/eval/metrics.json'))['test']['rows'])" 2>/dev/null ||
  grep -o '"rows": [0-9]*' "$work/eval/metrics.json" | grep -o '[0-9]*')
[[ $(($(wc -l <"$work/pred.csv") - 1)) -eq $rows ]] || fail "predict wrote $(($(wc -l <"$work/pred.csv") - 1)) rows, evaluate saw $rows"
printf 'P5\n40 40\n255\n' >"$work/patch.pgm"
head -c 1600 /dev/urandom >>"$work/patch.pgm"
"$prog" predict --checkpoint "$run/best.safetensors" --out "$work/image.csv" --threads 1 --quiet "$work/patch.pgm" >/dev/null
[[ $(wc -l <"$work/image.csv") -eq 2 ]] || fail "predict on one IMAGE wrote $(($(wc -l <"$work/image.csv") - 1)) rows"
grep -qF "$work/patch.pgm,0,," "$work/image.csv" || fail "the IMAGE row does not start with its path"
echo "ok: evaluate ($rows test rows) and predict (split and IMAGE) from the checkpoint alone"

# --- 3. real data ---------------------------------------------------------------------------------------
if [[ -n "$data" && -f "$data/mini-mias/Info.txt" ]]; then
  "$prog" train --data "$data/mini-mias" --images 60 --window 128 --patch 32 --per-roi 2 --per-image 2 --batch 16 \
    --epochs 2 --threads 1 --quiet --out "$work/mias" >"$work/mias_train.txt"
  "$prog" evaluate --checkpoint "$work/mias/best.safetensors" --out "$work/mias_eval" --replicates 100 --threads 1 \
    --quiet >"$work/mias_eval.txt"
  grep -qF "**Patches per class**" "$work/mias_eval.txt" || fail "the mini-MIAS evaluation printed no class counts"
  grep -F "| test (A and B) |" "$work/mias_eval.txt" || fail "the mini-MIAS evaluation printed no test counts"
  grep -F "| AUC (A and B) |" "$work/mias_eval.txt" || true
  echo "ok: mini-MIAS (first 60 images) trained and evaluated"
else
  echo "SKIP: no shared data (mini-mias/Info.txt) under '${data:-<unset>}'; set MAMMOCL_DATA to run the mini-MIAS check"
fi

echo "patch_classifier_check: all checks passed in $((SECONDS - t0)) s"
