#!/usr/bin/env bash
# Runs the worker against local PostgreSQL and Kafka, feeds it a short demo stream of
# commands and prints the events it produced; then stops the worker.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
SW="$BIN/stockworker"
"$SW" migrate --grant-to stockworker_app   # as the schema owner
"$SW" topics
mkdir -p .services
# The worker connects as the app role: data privileges only, no DDL.
DATABASE_URL="$STOCKWORKER_APP_DATABASE_URL" "$SW" worker >.services/demo-worker.log 2>&1 &
worker=$!
trap 'kill -TERM $worker 2>/dev/null; wait $worker 2>/dev/null || true' EXIT
status=0
"$SW" demo || status=$?
echo
echo "positions now:"
"$SW" positions | grep -E "^sku|^DEMO" | tail -n 6
echo "(worker log: .services/demo-worker.log)"
exit $status
