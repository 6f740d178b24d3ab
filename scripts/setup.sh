#!/usr/bin/env bash
# Create .venv with Python 3.10 (lava-nc/lava-dl need <3.11) and install the project editable.
# Idempotent: a second call with an up-to-date .venv returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${RSSNN_PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.10 "$(pyenv root 2>/dev/null)/versions/$(cat .python-version 2>/dev/null)/bin/python"; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      PY=$cand; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "setup: no Python 3.10 found; install one (e.g. 'pyenv install 3.10') or set RSSNN_PYTHON=/path/to/python3.10" >&2
  exit 1
fi
stamp=.venv/.rssnn-installed
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
echo "setup: installing rssnn-lava and its dependencies into .venv (about 90 s the first time)"
# pip's own warnings about this machine's extra index folders are noise; errors still show.
quiet() { "$@" 2>&1 | { grep -vE 'is ignored: it is neither|BuildBackendWarning|^\s*(!!|\*+)?\s*$|careful with folders|name as your package|WheelFile\(|precedence during imports' || true; }; }
set -o pipefail
quiet .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
quiet .venv/bin/python -m pip install -q -e '.[dev,nir]'
touch "$stamp"
echo "setup: .venv ready ($(.venv/bin/python --version))"
