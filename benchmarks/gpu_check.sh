#!/usr/bin/env bash
# One GPU check, under 8 minutes on an H100/H200: the CUDA-relevant tests, then the paper-speed
# benchmark on full-size fake CIFAR-10 (50,000/10,000, written by the benchmark itself): a dense
# epoch at batch 64 and 128, K = 1, 8, 32, 64 retrains per model-epoch, LMC (11 points) + CKA of one
# pair, `cifar10-preresnet20-epochs-quick` extrapolated, vmap vs grouped-convolution fusion at
# K = 8, 32, 64 (issue 26), then bf16 / CUDA-graph rows; one table.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --dry      # the same code paths on the CPU, tiny data (a minute)
#
# Python: $PYTHON or python3. Packages that only exist as wheels in .whl/ (tinydb, plotext, mnist1d,
# textual, ...) are installed offline into /tmp/site first (pip --no-index --no-deps --target).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
DRY=0
[[ "${1:-}" == "--dry" ]] && DRY=1
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || echo "WHEELS: install failed"
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
start=$SECONDS
if [[ $DRY == 0 ]]; then
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), 'torch', torch.__version__)" || exit 1
  BENCH=(--device cuda --ks 1,8,32,64 --retrain-batch 64 --epoch-fraction 0.5 --extras)
  TESTS_TIMEOUT=100; BENCH_TIMEOUT=290; COMPILE_TIMEOUT=70
else
  "$PY" -c "import torch; print('dry run on the CPU, torch', torch.__version__)"
  BENCH=(--device cpu --tiny --ks 1,2 --extras)
  TESTS_TIMEOUT=300; BENCH_TIMEOUT=300; COMPILE_TIMEOUT=60
fi

# correctness (the CPU proves it too; on a GPU the CUDA-only tests run as well): fused BN == one by one,
# batched LMC == point by point, bf16 / channels_last / compile options
if "$PY" -c "import pytest" 2> /dev/null; then
  timeout "$TESTS_TIMEOUT" "$PY" -m pytest -q -x -p no:cacheprovider tests/test_train.py tests/test_metrics.py \
    tests/test_execution_options.py \
    tests/test_grouped.py -k "(fused or batched or cuda or bf16 or channels_last or fusion or grouped or widen) and not compiled" 2>&1 | tail -n 15
  echo "TESTS: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
else
  echo "TESTS: skipped (no pytest on this machine)"
fi

# speed: one process, one table (rows also print as they are measured, so a timeout still shows them)
timeout "$BENCH_TIMEOUT" "$PY" benchmarks/paper_speed.py "${BENCH[@]}"
echo "BENCHMARK: exit $? after $((SECONDS - start)) s"

# last, with what is left of the 8 minutes: CUDA graphs (compiles for a minute or more) == eager
if "$PY" -c "import pytest" 2> /dev/null; then
  timeout "$COMPILE_TIMEOUT" "$PY" -m pytest -q -x -p no:cacheprovider tests/test_train.py -k "compiled" 2>&1 | tail -n 5
  echo "COMPILE TEST: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s in all"
fi
