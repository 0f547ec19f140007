#!/usr/bin/env bash
# On the device machine (no network), after bench/device/prepare.sh has filled .whl/ here:
# install the carried wheels, run the GPU benchmark under a wall-clock guard, leave everything
# in $OUT (gpu_latency.txt, gpu_latency.json, gpu.txt, install.txt, lora.txt). Extra arguments
# go to bench/gpu_latency.py. The device tool's call:
#
#   run(command="bash bench/device/run.sh", carry=[".whl"], timeout_s=570)
#
# MAX_SECONDS (default 420) bounds the benchmark itself; install and imports come on top
# (~30 s), so it ends well inside timeout_s and the rows so far always come back.
#
# With LORA_SECONDS > 0, bench/lora.py --full follows (time per image with 0, 1 and 2 LoRA
# adapters at 1024x1024; goal: one adapter <= 1.10 of none), for at most that long; keep
# MAX_SECONDS + LORA_SECONDS + ~60 under timeout_s:
#
#   run(command="MAX_SECONDS=300 LORA_SECONDS=200 bash bench/device/run.sh", carry=[".whl"],
#       timeout_s=570)
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/gpu-bench-out}
site=${SITE:-/tmp/site}
mkdir -p "$out"

if ! python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$site" .whl/*.whl >"$out/install.txt" 2>&1; then
  cat "$out/install.txt"
  echo "installing the carried wheels failed: was .whl carried? (bash bench/device/prepare.sh)"
  exit 1
fi
export PYTHONPATH="$site" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.draw \
  --format=csv >"$out/gpu.txt" 2>&1 || echo "no nvidia-smi" >"$out/gpu.txt"
cat "$out/gpu.txt"
python3 bench/gpu_latency.py --max-seconds "${MAX_SECONDS:-420}" --out "$out" "$@" 2>&1 \
  | tee "$out/gpu_latency.txt"
if [ "${LORA_SECONDS:-0}" -gt 0 ]; then
  timeout "$LORA_SECONDS" python3 bench/lora.py --full --size 1024x1024 --runs 3 2>&1 \
    | tee "$out/lora.txt"
fi
