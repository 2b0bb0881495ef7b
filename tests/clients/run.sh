#!/usr/bin/env bash
# Real-client tests: starts the quickstart binary on SQLite (and PostgreSQL when
# GOFORWARD_TEST_DATABASE_URL is set), then runs every scripts/*.test.mjs with
# `node --test` against it, using the unmodified supabase-js from npm.
#
# usage: tests/clients/run.sh <path-to-goforward-quickstart-binary>
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 <path-to-goforward-quickstart-binary>" >&2
  exit 2
fi
[[ -x "$1" && -f "$1" ]] || { echo "error: $1 is not an executable file" >&2; exit 2; }
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE"

ci=false; [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]] && ci=true
READY_TIMEOUT_SECS="${GOFORWARD_CLIENTS_READY_TIMEOUT:-30}"

command -v node >/dev/null || { echo "error: node is required (Node 20+)" >&2; exit 1; }
command -v npm >/dev/null || { echo "error: npm is required" >&2; exit 1; }
command -v curl >/dev/null || { echo "error: curl is required" >&2; exit 1; }
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
  echo "error: Node 20+ required, found $(node --version)" >&2
  exit 1
fi

# --- (1) dependencies: npm ci when node_modules is missing or out of date ---
lock_hash="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
stamp=node_modules/.goforward-lock.sha256
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_hash" ]]; then
  echo "==> npm ci (tests/clients)"
  npm ci --no-audit --no-fund
  echo "$lock_hash" >"$stamp"
fi

shopt -s nullglob
scripts=("$HERE"/scripts/*.test.mjs)
shopt -u nullglob
if (( ${#scripts[@]} == 0 )); then
  echo "error: no scripts/*.test.mjs found" >&2
  exit 1
fi

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
random_hex() { node -e "console.log(require('crypto').randomBytes($1).toString('hex'))"; }

# Replaces the database name in a postgres URL (keeps user, host, port, query).
with_database() {
  node -e 'const u=new URL(process.argv[1]);u.pathname="/"+process.argv[2];console.log(u.href)' "$1" "$2"
}

# --- (2) one backend: fresh data dir (+ database), server, every script ---
# Runs in a subshell (its own EXIT trap cleans up); returns non-zero on any failure.
run_backend() {
  # Not `local`: the EXIT trap runs after this function has returned.
  backend="$1" server_pid="" db_name="" db_url="" admin_url=""
  data_dir="$(mktemp -d "${TMPDIR:-/tmp}/gf-clients-$backend.XXXXXX")"
  log="$data_dir/server.log"

  cleanup() {
    local rc=$?
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
      kill -TERM "$server_pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$server_pid" 2>/dev/null || true
      wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "$db_name" ]]; then
      psql "$admin_url" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" >/dev/null 2>&1 \
        || psql "$admin_url" -q -c "DROP DATABASE IF EXISTS \"$db_name\"" >/dev/null 2>&1 \
        || echo "warning: could not drop database $db_name" >&2
    fi
    if [[ "${GOFORWARD_CLIENTS_KEEP:-}" == "1" ]]; then
      echo "kept $data_dir (GOFORWARD_CLIENTS_KEEP=1)" >&2
    else
      rm -rf "$data_dir"
    fi
    exit "$rc"
  }
  trap cleanup EXIT

  # Nothing from the caller's environment may pick the database or a config file.
  unset GOFORWARD_DATABASE_URL GOFORWARD_CONFIG GOFORWARD_ADDR GOFORWARD_DATA_DIR
  if [[ "$backend" == postgres ]]; then
    command -v psql >/dev/null || { echo "error: psql is required for the postgres run" >&2; return 1; }
    admin_url="$GOFORWARD_TEST_DATABASE_URL"
    db_name="gf_clients_$(random_hex 6)"
    psql "$admin_url" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db_name\"" >/dev/null
    db_url="$(with_database "$admin_url" "$db_name")"
    export GOFORWARD_DATABASE_URL="$db_url"
  fi

  local port secret anon service base
  port="$(free_port)"
  secret="$(random_hex 32)"
  base="http://127.0.0.1:$port"
  export GOFORWARD_JWT_SECRET="$secret"
  export GOFORWARD_ADDR="127.0.0.1:$port"
  export GOFORWARD_DATA_DIR="$data_dir"
  export GOFORWARD_LOG=warn

  echo "==> [$backend] starting $(basename "$BIN") on $base"
  # cwd = the data dir, so no goforward.toml lying around is picked up.
  (cd "$data_dir" && exec "$BIN") >"$log" 2>&1 &
  server_pid=$!

  local ready=false deadline=$((SECONDS + READY_TIMEOUT_SECS))
  while (( SECONDS < deadline )); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "error: [$backend] the server exited before becoming ready; last 50 log lines:" >&2
      tail -n 50 "$log" >&2
      return 1
    fi
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/health/ready" || true)" == 200 ]]; then
      ready=true
      break
    fi
    sleep 0.2
  done
  if ! $ready; then
    echo "error: [$backend] GET /health/ready did not answer 200 within ${READY_TIMEOUT_SECS}s; last 50 log lines:" >&2
    tail -n 50 "$log" >&2
    return 1
  fi

  anon="$(node "$HERE/keys.mjs" anon 3600)"
  service="$(node "$HERE/keys.mjs" service_role 3600)"

  local failed=() script
  for script in "${scripts[@]}"; do
    echo "==> [$backend] $(basename "$script")"
    if ! SUPABASE_URL="$base" SUPABASE_ANON_KEY="$anon" SUPABASE_SERVICE_KEY="$service" \
      GOFORWARD_BACKEND="$backend" node --test --test-reporter=spec "$script"; then
      failed+=("$(basename "$script")")
    fi
  done

  # Stop the server (graceful first) so the log is complete before it is scanned.
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""

  local leaked=()
  grep -qF -- "$secret" "$log" && leaked+=("GOFORWARD_JWT_SECRET")
  grep -qF -- "$anon" "$log" && leaked+=("anon key")
  grep -qF -- "$service" "$log" && leaked+=("service_role key")
  if (( ${#leaked[@]} > 0 )); then
    echo "error: [$backend] the server log contains secrets: ${leaked[*]}" >&2
    failed+=("secret scan")
  fi

  if (( ${#failed[@]} > 0 )); then
    echo "FAILED [$backend]: ${failed[*]}" >&2
    echo "--- [$backend] last 50 lines of the server log ---" >&2
    tail -n 50 "$log" >&2
    return 1
  fi
  echo "==> [$backend] all ${#scripts[@]} script(s) passed"
}

status=0
backends=(sqlite)
if [[ -n "${GOFORWARD_TEST_DATABASE_URL:-}" ]]; then
  backends+=(postgres)
elif $ci; then
  echo "error: GOFORWARD_TEST_DATABASE_URL not set (CI requires the postgres run)" >&2
  status=1
else
  echo "skipped postgres: GOFORWARD_TEST_DATABASE_URL not set"
fi

for backend in "${backends[@]}"; do
  set +e
  (set -e; run_backend "$backend")
  rc=$?
  set -e
  (( rc == 0 )) || status=1
done

if (( status == 0 )); then echo "==> client tests passed"; else echo "==> client tests FAILED" >&2; fi
exit "$status"
