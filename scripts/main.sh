#!/usr/bin/env bash
# The main job: set up .venv (if needed), then the whole pipeline on real CIFAR-10:
# train (DLIF + MS-MPPD, Gaussian noise) -> evaluate attacks -> certify (randomized smoothing)
# -> export to NetX + verify in Lava
# -> run on Lava with the on-device MPPD monitor -> Loihi 2 cost -> summary table. 9-10 minutes
# on 2 cores once .venv exists (training keeps a 5-minute budget; docs/architecture.md).
# A second call reuses finished stages (RSSNN_FRESH=1 starts over). Extra args go to rssnn.commands.demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ARGS=()
if [ -n "${RSSNN_DATA_ROOT:-}" ]; then
  ARGS+=(--data-root "$RSSNN_DATA_ROOT")
elif [ ! -d ../shared/data/cifar10 ]; then
  ARGS+=(--data-root data --download)
fi
if [ "${RSSNN_FRESH:-0}" = 1 ]; then ARGS+=(--fresh); fi
exec .venv/bin/python -m rssnn.commands.demo "${ARGS[@]}" "$@"
