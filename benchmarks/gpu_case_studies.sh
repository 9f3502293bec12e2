#!/usr/bin/env bash
# Case studies on a GPU (issue 13): runs recipes/cifar10-preresnet20-gpu.yaml (PreResNet-20, full
# CIFAR-10, 5 temperatures x 5 densities x 2 dense x 2 retrain seeds) and prints the card, the plan's
# model-epochs, the run's wall time, the regime map and case study 1's table. Sized for one short
# device session once issue 12's fused BatchNorm training is in (estimate: docs/case-studies.md).
#   bash benchmarks/gpu_case_studies.sh [python]
# CIFAR10_DIR=folder with cifar-10-batches-py: real data (else the store's data folder, else FAKE
# full-size data is written and the output says so). STORE=store dir (default /tmp/tprm-gpu-cases).
# TPRM_GPU_CASES_TINY=1: the same code path on the CPU in seconds (a tiny override; no GPU needed).
# BUDGET_S=seconds: stop the run gracefully after that long (default 540); run again to resume.
set -euo pipefail
PY="${1:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ "${TPRM_GPU_CASES_TINY:-0}" = 1 ]; then
  exec "$PY" benchmarks/gpu_case_studies.py --device cpu --tiny ${STORE:+--store "$STORE"}
fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('card:', torch.cuda.get_device_name(0))"
# the run stops gracefully after BUDGET_S (default 540 s, inside a 10-minute command limit) and
# prints "PARTIAL"; the same command again resumes from the store (exit 3 = partial)
"$PY" benchmarks/gpu_case_studies.py --device cuda ${STORE:+--store "$STORE"}
