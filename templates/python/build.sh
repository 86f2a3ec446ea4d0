#!/usr/bin/env bash
# Builds {{name}}.wasm: installs componentize-py (pinned in requirements.txt) into .venv
# on first use, then componentizes app.py against wit/.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
.venv/bin/componentize-py --wit-path wit --world plugin componentize --python-path . app --output {{name}}.wasm
