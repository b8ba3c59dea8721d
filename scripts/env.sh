# Sourced by demo.sh and test.sh: installs the project into .venv and makes sure
# DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS point at running services, starting the
# local ones when they are not set.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
if [ -z "${DATABASE_URL:-}" ] || [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  scripts/services.sh start
  eval "$(scripts/services.sh env)"
fi
export DATABASE_URL KAFKA_BOOTSTRAP_SERVERS
BIN="$ROOT/.venv/bin"
