#!/usr/bin/env bash
# Install everything the test suite needs, then run it.
#
# Creates .venv (hubguard with its test extras, torch 2.14.1 and torchvision 0.29.1)
# and .venv-olah (the olah Hub mirror the Hub-path tests start on 127.0.0.1), both
# reused when they already exist. Extra arguments go to pytest, e.g. `-m "not slow"`.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch and torchvision first, pinned to the builds that import together on this machine.
.venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install --quiet -e ".[test]"

if [ ! -x .venv-olah/bin/olah-cli ]; then
    "$PYTHON" -m venv .venv-olah
    .venv-olah/bin/python -m pip install --quiet "olah==0.5.4"
fi
export HUBGUARD_OLAH_CLI="$PWD/.venv-olah/bin/olah-cli"

exec .venv/bin/python -m pytest "$@"
