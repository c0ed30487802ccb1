#!/usr/bin/env bash
# Set up a fresh machine: a venv in .venv with the pinned CPU build of torch, then the
# project with its test and notebook extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch 2.13.0 is a local CPU build on these machines; a bare `torch` would pull CUDA
python -m pip install -q torch==2.13.0
python -m pip install -q -e '.[dev,notebook]'
