#!/usr/bin/env bash
# Exercises the REST API with Schemathesis (PyPI) against a running `segkit serve` on loopback: it reads
# /api/v1/openapi.json, generates requests for every operation with an admin key and fails on any 5xx and any
# answer that does not match the document (status code, content type, response schema).
#
#   server/tests/schemathesis.sh [PATH_TO_SEGKIT]     # default: $CARGO_TARGET_DIR/debug/segkit (built if missing)
#
# Environment: SEGKIT_VENV (a venv with schemathesis; scripts/test-all.sh installs it from
# scripts/requirements-services.txt), SEGKIT_ST_MAX_EXAMPLES (examples per operation, default 20), SEGKIT_ST_PORT.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SEGKIT=${1:-$TARGET/debug/segkit}
if [ ! -x "$SEGKIT" ]; then
  (cd "$ROOT" && cargo build -p segkit-server --bin segkit)
fi
VENV=${SEGKIT_VENV:-$ROOT/bindings/python/.venv}
ST="$VENV/bin/st"
[ -x "$ST" ] || { echo "no schemathesis in $VENV: pip install -r scripts/requirements-services.txt" >&2; exit 2; }
MAX_EXAMPLES=${SEGKIT_ST_MAX_EXAMPLES:-20}
PORT=${SEGKIT_ST_PORT:-$(( 20000 + RANDOM % 20000 ))}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/segkit-st.XXXXXX")
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

WS="$WORK/ws"
"$SEGKIT" init "$WS" > /dev/null
KEY=$("$SEGKIT" --workspace "$WS" --json keys create --name schemathesis --role admin |
  "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["secret"])')
"$SEGKIT" --workspace "$WS" serve --bind "127.0.0.1:$PORT" --rate-limit 0 > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
BASE="http://127.0.0.1:$PORT/api/v1"
for _ in $(seq 100); do
  curl -fsS "$BASE/health" > /dev/null 2>&1 && break
  sleep 0.1
done

# Some data, so reads find something: an entity with rows, a source, a segment with a run, a template and a
# workflow (its receiver is a closed port: nothing is sent anywhere).
api() { curl -fsS -X "$1" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' "$BASE$2" ${3:+-d "$3"} > /dev/null; }
printf 'user_id,country,age,email\n1,CN,20,a@example.com\n2,US,40,b@example.com\n3,US,x,c@example.com\n' > "$WORK/users.csv"
api POST /entities '{"name": "user", "key": "user_id", "attributes": {"user_id": "int64", "country": "string", "age": "int64", "email": {"type": "string", "pii": true}}}'
api POST /sources "{\"name\": \"users_csv\", \"entity\": \"user\", \"config\": {\"type\": \"csv\", \"path\": \"$WORK/users.csv\"}}"
api POST /sources/users_csv/sync
api POST /segments '{"name": "adults", "entity": "user", "rule": {"attribute": "age", "op": "ge", "value": 30}}'
api POST /segments/adults/evaluate
api POST /templates '{"name": "hello", "channel": "webhook", "entity": "user", "parts": {"text": "Hi {{ entity.country }}"}}'
api POST /workflows '{"name": "welcome", "trigger": {"type": "entered", "segment": "adults"}, "steps": [{"name": "post", "type": "action", "action": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}, "template": "hello"}]}'
api POST /schedules '{"name": "nightly", "cron": "30 2 * * *", "job": {"type": "evaluate", "segment": "adults"}}'

SYNC_ID=$(curl -fsS -H "Authorization: Bearer $KEY" "$BASE/syncs?limit=1" |
  "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["id"])')
# Path parameters name the objects above (not for DELETE, which would remove them for the other operations), so
# the reads and actions reach the engine rather than answering 404.
# The served document's rule schema accepts every fixture rule and rejects malformed ones (jsonschema, from
# Schemathesis's dependencies).
curl -fsS "$BASE/openapi.json" > "$WORK/openapi.json"
"$VENV/bin/python" "$ROOT/server/tests/rule_schema_check.py" "$WORK/openapi.json" "$ROOT/tests/fixtures/dialects.json"

CONFIG="$WORK/schemathesis.toml"
{
  for pair in "segments:adults" "entities:user" "sources:users_csv" "templates:hello" "workflows:welcome" \
    "schedules:nightly"; do
    printf '[[operations]]\ninclude-path-regex = "/%s/[{]name[}]"\nexclude-method = "DELETE"\nparameters = { name = "%s" }\n\n' \
      "${pair%%:*}" "${pair#*:}"
  done
  printf '[[operations]]\ninclude-path-regex = "/syncs/[{]id[}]"\nparameters = { id = "%s" }\n' "$SYNC_ID"
} > "$CONFIG"

START=$(date +%s)
set +e
# From the scratch directory: Schemathesis keeps a `.schemathesis/` cache in its working directory.
(cd "$WORK" && "$ST" --config-file "$CONFIG" run "$BASE/openapi.json" \
  --header "Authorization: Bearer $KEY" \
  --checks all --exclude-checks positive_data_acceptance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --workers 1 \
  --request-timeout 30 \
  --suppress-health-check all \
  --no-color)
RC=$?
set -e
echo "schemathesis: exit $RC after $(( $(date +%s) - START )) s (max examples $MAX_EXAMPLES)"
if [ "$RC" -ne 0 ]; then
  echo "--- server log (last 50 lines) ---"
  tail -50 "$WORK/server.log"
fi
exit "$RC"
