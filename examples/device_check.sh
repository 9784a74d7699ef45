#!/usr/bin/env bash
# The --device option of a training program, as ctest runs it:
#   device_check.sh no-cuda-build PROGRAM [ARGS...]   a build without CUDA: --device cuda fails at once with
#                                                     exit status 2 and exactly the documented message
#   device_check.sh no-gpu PROGRAM [ARGS...]          a CUDA build: where no GPU is present the program ends
#                                                     with exit status 1 and the backend's "no CUDA device"
#                                                     device_error (no crash); where a GPU is present it must
#                                                     succeed (the smoke run on the GPU)
# ARGS are the program's arguments without --device (added here). Exits 0 when the check passes.
set -u
mode=$1
prog=$2
shift 2
name=$(basename "$prog")
err=$(mktemp)
trap 'rm -f "$err"' EXIT
"$prog" "$@" --device cuda >/dev/null 2>"$err"
status=$?
message=$(head -c 300 "$err")
case $mode in
  no-cuda-build)
    expected="$name: --device cuda: this build has no CUDA backend; configure with -DMAMMOCL_WITH_CUDA=ON (docs/gpu_backend.md)"
    if [[ $status -ne 2 ]]; then
      echo "FAIL: exit status $status, expected 2"; cat "$err"; exit 1
    fi
    if [[ "$(cat "$err")" != "$expected" ]]; then
      echo "FAIL: stderr differs from the expected message"
      echo "expected: $expected"
      echo "got:      $(cat "$err")"
      exit 1
    fi
    # A bad value is a usage error too.
    "$prog" "$@" --device tpu >/dev/null 2>"$err"
    status=$?
    if [[ $status -ne 2 ]] || ! grep -qF -- "--device must be cpu or cuda, got 'tpu'" "$err"; then
      echo "FAIL: --device tpu gave exit status $status:"; cat "$err"; exit 1
    fi
    ;;
  no-gpu)
    if [[ $status -eq 0 ]]; then
      echo "--device cuda ran to the end (a GPU is present)"; exit 0
    fi
    if [[ $status -ne 1 ]]; then
      echo "FAIL: exit status $status (a crash?), expected 1 with the device_error message"; cat "$err"; exit 1
    fi
    if ! grep -q "^$name: .*no CUDA device" "$err"; then
      echo "FAIL: the message does not name the missing CUDA device:"; cat "$err"; exit 1
    fi
    ;;
  *)
    echo "device_check.sh: unknown mode '$mode'"; exit 2 ;;
esac
echo "ok: $message"
exit 0
