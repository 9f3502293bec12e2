#!/usr/bin/env bash
# The first device session's one command (docs/speed.md, "What the first device session runs"): on a
# bare device machine (python3.12, torch, torchvision, numpy, typer, rich, pyyaml, filelock, scipy,
# matplotlib; no tinydb, mnist1d, plotext, maybe no pytest), under 8 minutes on an H100/H200:
#   0. the carried wheels (.whl/, made here by benchmarks/gpu_wheels.sh) installed offline into
#      $TPRM_SITE, then every module a step needs imported and CUDA checked (gpu_preflight.py):
#      a missing piece stops the run here, in seconds, exit 2;
#   1. the CUDA tests (tests/test_cuda.py: torch + pytest only, no conftest), all of them (no -x);
#   2. the benchmark rows, least known first, each printed as it finishes (off --dry, the 50,000-image
#      fake data are written first, under their own limit): compiled vs eager fused PreResNet-20 (own
#      process and limit: a compiler hang costs only its own row), then bf16 fused, vmap vs grouped
#      convolutions at K = 32 and 64, a dense epoch (batch 128) vs the authors'-style baseline,
#      batched LMC last (11 points on 5,000 training images: the baseline's 33 DataLoader passes fit);
#   3. one table of every row measured (benchmarks/speed_table.py), also after a timeout.
# Worst case (every step at its time limit): 30 + 100 + 40 + 100 + 170 = 440 s of the 8 minutes.
#
#   bash benchmarks/gpu_wheels.sh            # HERE, before the session: the wheels into .whl/
#   bash benchmarks/gpu_check.sh             # on the device machine, from the repository root
#   bash benchmarks/gpu_check.sh --dry       # every step on the CPU, tiny data (tests/test_gpu_check.py)
#
# PYTHON (default python3), TPRM_WHEELS (default .whl), TPRM_SITE (default /tmp/site),
# TPRM_CHECK_DIR (default /tmp/tprm-gpu-check: the fake data and rows.jsonl).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
WHEELS="${TPRM_WHEELS:-.whl}"
SITE="${TPRM_SITE:-/tmp/site}"
CHECK="${TPRM_CHECK_DIR:-/tmp/tprm-gpu-check}"
DRY=0
[[ "${1:-}" == "--dry" ]] && DRY=1
start=$SECONDS
say() { echo "== [$((SECONDS - start)) s] $*"; }

# 0. carried wheels, offline (no pip on the machine: unzipped, which is what --target does for
#    these wheels); then everything checked before anything runs
mkdir -p "$CHECK" && rm -f "$CHECK/rows.jsonl"
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  if ! "$PY" -m pip install -q --upgrade --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl > "$CHECK/pip.log" 2>&1
  then
    say "pip install failed ($(tail -n 1 "$CHECK/pip.log")): unzipping the wheels into $SITE instead"
    "$PY" -c 'import glob, sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in glob.glob(sys.argv[2] + "/*.whl")]' \
      "$SITE" "$WHEELS"
  fi
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ $DRY == 0 ]]; then
  PREFLIGHT=(); T_TESTS=100; T_COMPILED=100; T_ROWS=170
  BENCH=(--device cuda --data "$CHECK/data" --ks 32,64 --retrain-batch 64 --steps 30 --workers 4
         --dense-batches 128)
  LMC=(--lmc-workers 4 --lmc-images 5000)
else
  PREFLIGHT=(--dry); T_TESTS=120; T_COMPILED=120; T_ROWS=240
  # tiny data, a half-width model (0.25 or 0.375: torch 2.14 segfaults in a CPU NHWC BatchNorm
  # backward with 4 or 6 channels); DataLoader workers under spawn (the start method that must
  # unpickle the dataset class)
  BENCH=(--device cpu --tiny --width 0.5 --data "$CHECK/data-tiny" --ks 2 --steps 3 --workers 1
         --mp-context spawn --dense-batches 64)
  LMC=(--lmc-workers 0 --lmc-images 64)
fi
timeout 30 "$PY" benchmarks/gpu_preflight.py "${PREFLIGHT[@]}" || { say "PREFLIGHT failed: nothing was run"; exit 2; }
say "PREFLIGHT ok"

# 1. the CUDA tests: their own step, every test (no -x), torch + pytest only (no conftest)
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 timeout "$T_TESTS" "$PY" -m pytest -v -rfEs -p no:cacheprovider --noconftest tests/test_cuda.py 2>&1 | tail -n 40
say "CUDA TESTS: exit ${PIPESTATUS[0]}"

# 2. the rows, least known first; each prints as it finishes and goes to rows.jsonl (first, off
#    --dry, the 50,000-image fake data are written, under their own limit)
if [[ $DRY == 0 ]]; then
  timeout 40 "$PY" benchmarks/paper_speed.py "${BENCH[@]}" --sections data
  say "DATA: exit $?"
fi
timeout "$T_COMPILED" "$PY" benchmarks/paper_speed.py "${BENCH[@]}" --sections compiled --rows-file "$CHECK/rows.jsonl" \
  | grep -v "^|"
say "COMPILED ROWS: exit ${PIPESTATUS[0]}"
timeout "$T_ROWS" "$PY" benchmarks/paper_speed.py "${BENCH[@]}" "${LMC[@]}" --sections bf16,grouped,dense,lmc \
  --rows-file "$CHECK/rows.jsonl" | grep -v "^|"
say "ROWS: exit ${PIPESTATUS[0]}"

# 3. one table
echo
"$PY" benchmarks/speed_table.py "$CHECK/rows.jsonl" "what (gpu_check.sh$([[ $DRY == 1 ]] && echo ' --dry'))"
say "done"
