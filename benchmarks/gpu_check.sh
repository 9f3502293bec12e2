#!/usr/bin/env bash
# One GPU check (< 8 min on an H100/H200): the CUDA-relevant tests, then the paper-speed benchmark on
# full-size fake CIFAR-10 (it writes its own data), ending in one table. Run from the repository root:
#   bash benchmarks/gpu_check.sh [python]
set -euo pipefail
PY="${1:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
# correctness on the card (the CPU proves it too): fused BN == separate, batched LMC == point by point
timeout 180 "$PY" -m pytest -q -x tests/test_train.py tests/test_metrics.py -k "fused or batched or lmc or bn" \
  -p no:cacheprovider || echo "TESTS FAILED (see above)"
# speed: dense epochs, K = 1, 8, 32, 64 retrains, LMC + CKA, the quick recipe extrapolated
timeout 330 "$PY" benchmarks/paper_speed.py --device cuda --ks 1,8,32,64 --retrain-batch 64 --workers 4
