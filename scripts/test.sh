#!/usr/bin/env bash
# The whole test suite: ruff, mypy (strict), import-linter, schema drift, pytest
# (unit, integration on real PostgreSQL, end-to-end on real Kafka + PostgreSQL + worker).
# Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
if [ -z "${DATABASE_URL:-}" ] || [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  scripts/services.sh start
  eval "$(scripts/services.sh env)"
fi
export DATABASE_URL KAFKA_BOOTSTRAP_SERVERS
BIN="$ROOT/.venv/bin"
echo "== ruff"
"$BIN/ruff" check src tests bench
"$BIN/ruff" format --check src tests bench
echo "== mypy (strict)"
"$BIN/mypy"
echo "== import-linter"
"$BIN/lint-imports"
echo "== pytest"
"$BIN/python" -m pytest "$@"
