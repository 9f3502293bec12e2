#!/usr/bin/env bash
# The wheel set gpu_check.sh installs offline on the device machine (python 3.12, linux x86_64):
# every package of benchmarks/gpu_wheels.txt as a binary wheel, no dependency resolution (the list
# is the closure). Run it HERE (the device machine reaches no index), before the device session:
#
#   bash benchmarks/gpu_wheels.sh            # -> .whl/ (git-ignored; carried with the working tree)
#
# PYTHON: the pip to download with (default python3); DEST (default .whl).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
DEST="${DEST:-.whl}"
mkdir -p "$DEST"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --abi cp312 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  -d "$DEST" -r benchmarks/gpu_wheels.txt
ls "$DEST"/*.whl | wc -l | xargs echo "wheels in $DEST:"
du -sh "$DEST"
