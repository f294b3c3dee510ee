#!/usr/bin/env bash
# The README's first command: generates an example project with three flows and
# two environments (qa, prod), then walks one release cycle on the embedded
# defaults (SQLite ledger, local artifact directory):
#   build -> release to qa -> promote to prod -> change a flow -> build ->
#   release it to qa -> roll it back, printing status, history and diff.
# Set KEEP=1 to keep the generated project.
set -euo pipefail
repo_root="$(cd "$(dirname "$0")/.." && pwd)"
source "$repo_root/scripts/lib.sh"

log "building flowgate"
cargo build --quiet --locked --manifest-path "$repo_root/Cargo.toml" -p flowgate
flowgate="$CARGO_TARGET_DIR/debug/flowgate"

project="$(mktemp -d "${TMPDIR:-/tmp}/flowgate-quickstart.XXXXXX")"
if [ "${KEEP:-}" = 1 ]; then log "project kept in $project"; else trap 'rm -rf "$project"' EXIT; fi
cd "$project"

# The example project: three flows sharing a small library.
mkdir -p flows lib
cat >lib/common.py <<'PY'
MARKER = "v1"
PY
cat >flows/etl.py <<'PY'
from prefect import flow
from lib.common import MARKER

@flow(name="etl-daily")
def etl(days: int = 1):
    print(f"etl {MARKER} for {days} day(s)")
PY
cat >flows/report.py <<'PY'
from prefect import flow
from lib.common import MARKER

@flow
def report(recipients: list[str] | None = None):
    print(f"report {MARKER} to {recipients or []}")
PY
cat >flows/cleanup.py <<'PY'
from prefect import flow

@flow
def cleanup(older_than_days: int = 30):
    print(f"cleanup older than {older_than_days}")
PY
cat >flowgate.toml <<'TOML'
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
work_pool = "qa-pool"

[envs.prod]
work_pool = "prod-pool"
TOML
printf '.flowgate/\n' >.gitignore

export GIT_AUTHOR_NAME="Quick Start" GIT_AUTHOR_EMAIL="quickstart@example.com"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
export FLOWGATE_ACTOR="quickstart@example.com"
git init -q -b main
git add -A && git commit -q -m "Three flows"

step() { printf '\n$ flowgate %s\n' "$*"; "$flowgate" "$@"; }

step build
step release --all --env qa --build HEAD --reason "first release"
step promote --from qa --to prod --reason "qa looked good"
step status

sed -i 's/v1/v2/' lib/common.py
git commit -q -am "Report v2"
step build
step release report --env qa --build HEAD --reason "try v2"
step diff prod qa
step rollback report --env qa --reason "v2 misbehaved"
step history report --env qa
step status
