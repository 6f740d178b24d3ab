#!/usr/bin/env bash
# The main job: set up .venv (if needed), then a short real run on CIFAR-10.
# Today: DLIF + MS-MPPD training with Gaussian noise (about 3 minutes on 2 cores), reusing a
# finished run in runs/main unless RSSNN_FRESH=1. Extra arguments go to train/cifar.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${RSSNN_OUT:-runs/main}
DATA_ARGS=()
if [ ! -d ../shared/data/cifar10 ] && [ -z "${RSSNN_DATA_ROOT:-}" ]; then
  DATA_ARGS=(--data-root data --download)
elif [ -n "${RSSNN_DATA_ROOT:-}" ]; then
  DATA_ARGS=(--data-root "$RSSNN_DATA_ROOT")
fi
if [ "${RSSNN_FRESH:-0}" = 1 ]; then rm -rf "$OUT"; fi
if [ -f "$OUT/metrics.csv" ] && [ -f "$OUT/best.pt" ]; then
  echo "main: reusing the finished run in $OUT (RSSNN_FRESH=1 retrains)"
else
  rm -rf "$OUT"
  .venv/bin/python train/cifar.py "${DATA_ARGS[@]}" --out "$OUT" --mode gaussian --rho 1 \
    --train-limit 10000 --epochs 2 "$@"
fi
.venv/bin/python -m rssnn.report "$OUT"
