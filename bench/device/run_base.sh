#!/usr/bin/env bash
# Base (issue 27) on the device machine: seconds per image at 1024x1024 with guidance 4, at 28
# and at 50 steps, plain diffusers against the engine (bench/gpu_latency.py --model base). After
# bench/device/prepare.sh has filled .whl/ here, one call of the device tool:
#
#   run(command="bash bench/device/run_base.sh", carry=[".whl"], timeout_s=570)
#
# Each run is bench/device/run.sh with its own folder ($OUT/base-28, $OUT/base-50) and a
# MAX_SECONDS guard (default 200 each; install, imports and weights come on top, ~40 s), so the
# call ends inside timeout_s with the rows so far. Extra arguments go to bench/gpu_latency.py.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/gpu-bench-out}
for steps in 28 50; do
  OUT="$out/base-$steps" MAX_SECONDS=${MAX_SECONDS:-200} \
    bash bench/device/run.sh --model base --steps "$steps" --runs 3 --no-fp8 "$@"
done
