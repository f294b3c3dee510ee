#!/usr/bin/env bash
# The README's first command, for real: installs the pinned Prefect into a cached
# virtual environment, starts a local Prefect server and one process worker per
# environment (qa and prod are two work pools on that server), generates an
# example project with three flows that print a marker from lib/common.py, and
# walks one release cycle, running every flow after each move:
#   build -> release to qa -> run -> promote to prod -> run -> change the marker,
#   build, release one flow to qa -> run -> roll it back -> run
# Each run's marker lines (from the server's logs) and `flowgate which` prove
# which build it executed; the script exits non-zero if any run did not print
# the expected marker. It stops everything it started; KEEP=1 keeps the temp dir.
set -euo pipefail
repo_root="$(cd "$(dirname "$0")/.." && pwd)"
source "$repo_root/scripts/lib.sh"

ensure_packages curl git
ensure_prefect
prefect="$FLOWGATE_PREFECT_VENV/bin/prefect"
py="$FLOWGATE_PREFECT_VENV/bin/python"
# FLOWGATE_WORKER_VENV runs the workers from another virtual environment that
# has prefect (the wheel test: one where pip installed prefect and the wheel, as
# on a user's worker host); by default they share the server's.
worker_venv="${FLOWGATE_WORKER_VENV:-$FLOWGATE_PREFECT_VENV}"

# FLOWGATE_BIN runs the quickstart with a flowgate that is already installed (the
# wheel test: the one pip put in a fresh virtual environment); else it builds one.
if [ -n "${FLOWGATE_BIN:-}" ]; then
  flowgate="$FLOWGATE_BIN"
else
  log "building flowgate"
  cargo build --quiet --locked --manifest-path "$repo_root/Cargo.toml" -p flowgate
  flowgate="$CARGO_TARGET_DIR/debug/flowgate"
fi
bin_dir="$(dirname "$flowgate")"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/flowgate-quickstart.XXXXXX")"
pids=()
# Stops a process group: SIGTERM, a grace period, then SIGKILL (a worker may
# ignore SIGTERM).
stop_group() {
  local pid=$1 grace=$2
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  for _ in $(seq 1 "$grace"); do
    kill -0 -- "-$pid" 2>/dev/null || return 0
    sleep 1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}
cleanup() {
  local status=$?
  # Workers first, so no flow run outlives its server; the server last.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_group "${pids[$i]}" 5; done
  if [ "${KEEP:-}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Prefect's state lives in the temp dir; nothing leaves this machine.
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
export FLOWGATE_CACHE_DIR="$tmp/bundles"
unset PREFECT_API_KEY PREFECT_API_AUTH_STRING

# Starts "$@" in its own process group (its pid is the group id), logging to $1.
start_group() {
  local logfile=$1
  shift
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  pids+=($!)
  disown $!
}

port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
api_url="http://127.0.0.1:$port/api"
log "starting a Prefect server on $api_url"
mkdir -p "$tmp/server"
PREFECT_HOME="$tmp/server" start_group "$tmp/server.log" \
  "$prefect" server start --host 127.0.0.1 --port "$port"
for i in $(seq 1 120); do
  curl -fsS "$api_url/health" >/dev/null 2>&1 && break
  if [ "$i" = 120 ]; then cat "$tmp/server.log" >&2; log "the Prefect server did not come up"; exit 1; fi
  sleep 1
done

# The example project: three flows sharing a small library.
project="$tmp/project"
mkdir -p "$project/flows" "$project/lib"
cd "$project"
cat >lib/common.py <<'PY'
MARKER = "v1"
PY
cat >flows/etl.py <<'PY'
from prefect import flow
from lib.common import MARKER

@flow(name="etl-daily", log_prints=True)
def etl(days: int = 1):
    print(f"quickstart-marker etl-daily {MARKER}: loaded {days} day(s)")
PY
cat >flows/report.py <<'PY'
from prefect import flow
from lib.common import MARKER

@flow(log_prints=True)
def report(recipients: list[str] | None = None):
    print(f"quickstart-marker report {MARKER}: sent to {recipients or []}")
PY
cat >flows/cleanup.py <<'PY'
from prefect import flow
from lib.common import MARKER

@flow(log_prints=True)
def cleanup(older_than_days: int = 30):
    print(f"quickstart-marker cleanup {MARKER}: removed files older than {older_than_days} days")
PY
cat >flowgate.toml <<TOML
[project]
name = "acme-flows"
image = "ghcr.io/acme/flows:{short}"

[flows.etl-daily]
entrypoint = "flows/etl.py:etl"
parameters = { days = 1 }
schedules = [{ cron = "0 3 * * *", timezone = "UTC" }]
tags = ["etl"]

[flows.report]
entrypoint = "flows/report.py:report"

[flows.cleanup]
entrypoint = "flows/cleanup.py:cleanup"

[envs.qa]
prefect_api_url = "$api_url"
work_pool = "qa-pool"
name_prefix = "qa-"

[envs.prod]
prefect_api_url = "$api_url"
work_pool = "prod-pool"
name_prefix = "prod-"
TOML
printf '.flowgate/\n' >.gitignore

export GIT_AUTHOR_NAME="Quick Start" GIT_AUTHOR_EMAIL="quickstart@example.com"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
export FLOWGATE_ACTOR="quickstart@example.com"
git init -q -b main
git add -A && git commit -q -m "Three flows"

step() { printf '\n$ flowgate %s\n' "$*"; "$flowgate" "$@"; }

# One process worker per pool; the deployments' pull step runs `flowgate pull`,
# so the built binary's directory comes first on the worker's PATH.
start_worker() {
  local pool=$1
  log "starting a process worker for $pool"
  mkdir -p "$tmp/worker-$pool"
  PREFECT_HOME="$tmp/worker-$pool" PREFECT_API_URL="$api_url" PREFECT_WORKER_QUERY_SECONDS=2 \
    PATH="$bin_dir:$worker_venv/bin:$PATH" \
    start_group "$tmp/worker-$pool.log" \
    "$worker_venv/bin/prefect" worker start --pool "$pool" --type process --prefetch-seconds 5
}

# A JSON field of stdin, by a Python expression over `d`.
field() { "$py" -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
# The server on SQLite answers 503 under concurrent writes: curl retries those.
api() {
  curl -fsS --retry 10 --retry-delay 1 -X "$1" -H 'Content-Type: application/json' \
    "$api_url$2" ${3:+--data "$3"}
}

failures=0
# run_flows ENV PREFIX FLOW=PREFECT_FLOW_NAME=MARKER...: creates one run per
# flow through the API, waits for all of them, then prints each run's marker
# lines and `flowgate which`, counting runs that did not print the marker.
run_flows() {
  local env=$1 prefix=$2
  shift 2
  local spec flow name marker id deployment run_ids=() state
  printf '\n--- running every flow in %s\n' "$env"
  for spec in "$@"; do
    IFS== read -r flow name marker <<<"$spec"
    deployment="$(api GET "/deployments/name/$name/$prefix$flow" | field 'd["id"]')"
    id="$(api POST "/deployments/$deployment/create_flow_run" '{}' | field 'd["id"]')"
    run_ids+=("$id")
  done
  local i=0
  for spec in "$@"; do
    IFS== read -r flow name marker <<<"$spec"
    id="${run_ids[$i]}"
    i=$((i + 1))
    state=""
    for _ in $(seq 1 180); do
      state="$(api GET "/flow_runs/$id" | field 'd["state_type"]')"
      case "$state" in COMPLETED | FAILED | CRASHED | CANCELLED) break ;; esac
      sleep 1
    done
    printf '\n%s in %s: run %s %s, expected marker %s\n' "$flow" "$env" "$id" "$state" "$marker"
    # The run's logs reach the server in batches, possibly after its final state.
    local lines=""
    for _ in $(seq 1 20); do
      lines="$(api POST /logs/filter "{\"logs\": {\"flow_run_id\": {\"any_\": [\"$id\"]}}, \"sort\": \"TIMESTAMP_ASC\"}" |
        field '"\n".join(l["message"] for l in d if "quickstart-marker" in l["message"])')"
      [ -n "$lines" ] && break
      sleep 0.5
    done
    printf '  log: %s\n' "${lines:-<no marker line>}"
    "$flowgate" which "$id" --env "$env" | sed 's/^/  /'
    if [ "$state" != COMPLETED ] || ! grep -qx "quickstart-marker $flow $marker:.*" <<<"$lines"; then
      log "run $id of $flow in $env did not print marker $marker"
      failures=$((failures + 1))
    fi
  done
}
all_at() {
  local env=$1 prefix=$2 etl=$3 report=$4 cleanup=$5
  run_flows "$env" "$prefix" "etl-daily=etl-daily=$etl" "report=report=$report" "cleanup=cleanup=$cleanup"
}

step build
step release --all --env qa --build HEAD --reason "first release" --create-work-pools
start_worker qa-pool
all_at qa qa- v1 v1 v1

step promote --from qa --to prod --reason "qa looked good" --create-work-pools
start_worker prod-pool
all_at prod prod- v1 v1 v1

sed -i 's/v1/v2/' lib/common.py
git commit -q -am "Marker v2"
step build
step release report --env qa --build HEAD --reason "try v2"
all_at qa qa- v1 v2 v1
step diff prod qa

step rollback report --env qa --reason "v2 misbehaved"
all_at qa qa- v1 v1 v1
step history report --env qa
step status

if [ "$failures" != 0 ]; then
  log "$failures run(s) did not print the expected marker"
  exit 1
fi
printf '\nEvery run printed the marker of the build flowgate released.\n'
