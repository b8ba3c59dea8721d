#!/usr/bin/env bash
# The whole test suite: ruff, mypy (strict), import-linter, schema drift, pytest
# (unit, integration on real PostgreSQL, end-to-end on real Kafka + PostgreSQL + worker).
# Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
echo "== ruff"
"$BIN/ruff" check src tests bench
"$BIN/ruff" format --check src tests bench
echo "== mypy (strict)"
"$BIN/mypy"
echo "== import-linter"
"$BIN/lint-imports"
echo "== pytest"
"$BIN/python" -m pytest "$@"
