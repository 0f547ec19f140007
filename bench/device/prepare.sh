#!/usr/bin/env bash
# Here, with network: download into .whl/ (git-ignored) the wheels that bench/gpu_latency.py
# and bench/lora.py need and the device machine's image lacks. That image (nvidia-h200: Python 3.12, torch 2.11,
# transformers 5.17, huggingface_hub 1.33, safetensors 0.8) has no diffusers and no torchao, and
# reaches no registry; bench/device/run.sh installs these there without network.
#
# Checked against diffusers 0.42.1's Requires-Dist: huggingface-hub>=1.32,<3 (1.33.0 there),
# safetensors>=0.8.0 (0.8.0 there), numpy, regex, requests, filelock and Pillow are all there;
# importlib_metadata is imported only on Python < 3.8, so it need not travel. torchao 0.18.0
# needs nothing beyond torch (>= 2.11 for its C++ extensions; float8 works without them).
#
#   bash bench/device/prepare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

# peft (and accelerate, which peft imports) for bench/lora.py's adapters.
WHEELS=(diffusers==0.42.1 torchao==0.18.0 peft==0.21.2 accelerate==1.15.0)
LIMIT_MIB=60  # the device tool carries at most 64 MiB: wheels plus the working tree

rm -rf .whl
mkdir .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
  -d .whl "${WHEELS[@]}"

for wheel in .whl/*.whl; do
  echo "$(basename "$wheel"): $(du -h "$wheel" | cut -f1)"
  unzip -p "$wheel" '*.dist-info/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' \
    | sed 's/^/  /' || true
done

tree_bytes=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
wheel_bytes=$(du -cb .whl/*.whl | tail -1 | cut -f1)
total_mib=$(( (tree_bytes + wheel_bytes) / 1048576 ))
echo "working tree $(( tree_bytes / 1024 )) KiB + wheels $(( wheel_bytes / 1024 )) KiB = ${total_mib} MiB (limit ${LIMIT_MIB})"
if [ "$total_mib" -ge "$LIMIT_MIB" ]; then
  echo "too large for the device tool's 64 MiB" >&2
  exit 1
fi
