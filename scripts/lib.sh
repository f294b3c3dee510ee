# Shared by scripts/test, .ci/run and examples/: where caches live, and how to
# make sure the services the tests need are up on a machine that may be new.

# Caches kept outside the clone so repeated runs reuse them.
export FLOWGATE_CACHE_HOME="${FLOWGATE_CACHE_HOME:-$HOME/.cache/flowgate}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FLOWGATE_CACHE_HOME/target}"

# The PostgreSQL server the ledger tests create their databases on.
export FLOWGATE_TEST_POSTGRES_URL="${FLOWGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

log() { printf '==> %s\n' "$*" >&2; }

# Prints the free space where the build and the tests write, and stops early
# with the figure when it is below what a cold build of the suite needs (about
# 6 GiB), rather than failing later in a linker with "No space left on device".
check_disk_space() {
  local need_kib=$((6 * 1024 * 1024)) dir
  mkdir -p "$CARGO_TARGET_DIR"
  for dir in "$CARGO_TARGET_DIR" "${TMPDIR:-/tmp}"; do
    local free_kib
    free_kib=$(df -Pk "$dir" | awk 'NR==2 {print $4}')
    log "free space under $dir: $((free_kib / 1024)) MiB"
    if [ "$free_kib" -lt "$need_kib" ]; then
      echo "scripts: only $((free_kib / 1024)) MiB free under $dir; the suite needs about 6 GiB (remove old target directories or bench trees under /tmp/flowgate-bench)" >&2
      return 1
    fi
  done
}

# Debian packages the scripts call, installed when a new machine lacks them.
# Each argument is a command, or COMMAND:PACKAGE when the package is named otherwise.
ensure_packages() {
  local missing=()
  for entry in "$@"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Starts PostgreSQL on 127.0.0.1:5432 if it is not answering, installing it from
# Debian's packages with trust auth on loopback when the machine has none.
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing PostgreSQL"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    local conf
    conf=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n1)
    printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust\n' >"$conf"
  fi
  log "starting PostgreSQL"
  local version
  version=$(ls /etc/postgresql | head -n1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
    sleep 1
  done
  log "PostgreSQL did not come up on 127.0.0.1:5432"
  return 1
}

# Python tools the tests run for real, pinned, in a virtual environment kept
# outside the clone and rebuilt when this list changes.
PYTHON_TOOLS=("moto[server]==5.2.1" "check-jsonschema==0.39.0" "openapi-spec-validator==0.9.0")
export FLOWGATE_VENV="${FLOWGATE_VENV:-$FLOWGATE_CACHE_HOME/venv}"

ensure_python_tools() {
  local stamp="$FLOWGATE_VENV/.flowgate-tools"
  local wanted="${PYTHON_TOOLS[*]}"
  if [ ! -x "$FLOWGATE_VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    log "installing ${wanted} into $FLOWGATE_VENV"
    python3 -m venv "$FLOWGATE_VENV"
    "$FLOWGATE_VENV/bin/pip" install --quiet --disable-pip-version-check "${PYTHON_TOOLS[@]}"
    printf '%s' "$wanted" >"$stamp"
  fi
  export PATH="$FLOWGATE_VENV/bin:$PATH"
}

# The Prefect release the tests run a real server and worker from, pinned, in its
# own virtual environment (its dependencies must not meet moto's).
PREFECT_VERSION="3.9.1"
export FLOWGATE_PREFECT_VENV="${FLOWGATE_PREFECT_VENV:-$FLOWGATE_CACHE_HOME/prefect-$PREFECT_VERSION}"

ensure_prefect() {
  if [ ! -x "$FLOWGATE_PREFECT_VENV/bin/prefect" ]; then
    log "installing prefect==$PREFECT_VERSION into $FLOWGATE_PREFECT_VENV"
    rm -rf "$FLOWGATE_PREFECT_VENV"
    python3 -m venv "$FLOWGATE_PREFECT_VENV"
    "$FLOWGATE_PREFECT_VENV/bin/pip" install --quiet --disable-pip-version-check "prefect==$PREFECT_VERSION"
  fi
}
