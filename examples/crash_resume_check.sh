#!/usr/bin/env bash
# ctest driver: a training process killed in the middle of an epoch and started again ends with the same
# checkpoints, bit for bit, as one never interrupted (train_patch_classifier --crash-after).
#   crash_resume_check.sh <train_patch_classifier> <work dir>
set -euo pipefail
exe=$1 work=$2
rm -rf "$work"
common=(--strategy supcon_finetune --epochs 2 --epochs2 2 --train 96 --val 20 --test 20 --size 24 --batch 16 --quiet)
"$exe" "${common[@]}" --out "$work/reference" > "$work.reference.log"
crashes=0
for step in 4 13; do   # mid-epoch in stage 1 (after the step-3 checkpoint), then mid-epoch in stage 2
  if "$exe" "${common[@]}" --out "$work/crashed" --crash-after "$step" > "$work.crash$step.log" 2>&1; then
    echo "the run with --crash-after $step did not crash"; exit 1
  fi
  crashes=$((crashes + 1))
done
"$exe" "${common[@]}" --out "$work/crashed" > "$work.resumed.log"
grep -q "(resumed)" "$work.resumed.log" || { echo "the last run did not resume"; exit 1; }
ref=$work/reference/supcon_finetune new=$work/crashed/supcon_finetune
# best.safetensors (the model and its validation AUC) must be byte-identical.
cmp "$ref/best.safetensors" "$new/best.safetensors" || { echo "best.safetensors differs"; exit 1; }
# last.safetensors: its metadata holds the epoch log with wall-clock times, so compare the tensor bytes
# (everything after the 8-byte length and the JSON header).
tensor_bytes() { local n; n=$(od -An -t u8 -N 8 "$1" | tr -d ' '); tail -c +$((9 + n)) "$1"; }
cmp <(tensor_bytes "$ref/last.safetensors") <(tensor_bytes "$new/last.safetensors") ||
  { echo "the tensors of last.safetensors differ after $crashes crashes and a resume"; exit 1; }
[ "$(tensor_bytes "$ref/last.safetensors" | wc -c)" -gt 100000 ] || { echo "last.safetensors holds too little"; exit 1; }
echo "killed $crashes times, resumed: best.safetensors byte-identical and every tensor of last.safetensors equal to the uninterrupted run's"
