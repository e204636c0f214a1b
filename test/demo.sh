#!/usr/bin/env bash
# Runs swarm-utils against the local test swarm with a few labelled sample services and shows jobs run.
# From a fresh Debian 12 machine as root: installs what is missing, starts the test swarm
# (manager + 2 workers, private registry, S3 server), npm ci, then the server on :8080.
# `--once` stops the server after the demo jobs; without it the server keeps running (Ctrl-C stops it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# Node 24 (the image's major), from the npm registry into .node/ when the machine has another one;
# first, since env.sh tags the stand-in images by the Node major
. test/node.sh
. test/swarm/env.sh
# on a node of a real swarm, stop before installing anything (up.sh refuses too): see README
bash test/swarm/guard.sh --no-record || exit 1
ONCE=0; [ "${1:-}" = "--once" ] && ONCE=1
PORT="${SWARM_UTILS_PORT:-8080}"
TOKEN=demo-admin-token
URL="http://127.0.0.1:$PORT"

step() { printf '\n==> %s\n' "$*"; }

command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq curl >/dev/null; }
step "test swarm"
bash test/swarm/up.sh

step "sample services (labelled with deploy.labels, as a stack would)"
docker login -u "$SU_REGISTRY_USER" --password-stdin "$SU_REGISTRY" <<<"$SU_REGISTRY_PASSWORD" >/dev/null 2>&1
docker service rm demo-web demo-db >/dev/null 2>&1 || true
sleep 2
docker service create --detach --with-registry-auth --name demo-web --replicas 2 \
  --label swarm-utils.update.token=demo-ci-token \
  --label 'swarm-utils.update.exec-pre=echo pre-update on $(hostname)' \
  --label swarm-utils.clean.enable=true \
  --label 'swarm-utils.clean.exec=rm -rf /tmp/cache && echo cache cleared' \
  "$SU_IMAGE_APP_V1" >/dev/null
docker service create --detach --with-registry-auth --name demo-db --replicas 1 \
  --constraint node.role==worker \
  --mount type=volume,source=demo-db-data,target=/data \
  --label swarm-utils.backup.enable=true \
  --label swarm-utils.backup.stop=true \
  --label 'swarm-utils.backup.exec=date > /data/dump.sql' \
  "$SU_IMAGE_APP_V1" >/dev/null
for i in $(seq 60); do
  [ "$(docker service ls --filter name=demo- --format '{{.Replicas}}' | sort | tr '\n' ' ')" = "1/1 2/2 " ] && break
  sleep 1
done
docker service ls --filter name=demo-

step "swarm-utils on $URL"
export SWARM_UTILS_PORT=$PORT SWARM_UTILS_ADMIN_TOKEN_LIST=$TOKEN SWARM_UTILS_DB_PATH="$SU_STATE/demo/swarm-utils.db" \
  SWARM_UTILS_DOCKER_CLI_IMAGE_NAME="$SU_IMAGE_DOCKER_CLI" SWARM_UTILS_BACKUP_IMAGE="$SU_IMAGE_BACKUP" \
  SWARM_UTILS_REGISTRY_URL="https://$SU_REGISTRY" SWARM_UTILS_REGISTRY_USER="$SU_REGISTRY_USER" SWARM_UTILS_REGISTRY_PASSWORD="$SU_REGISTRY_PASSWORD" \
  SWARM_UTILS_S3_DOMAIN="$SU_S3_ENDPOINT" SWARM_UTILS_S3_HTTPS=false SWARM_UTILS_S3_BUCKET_NAME="$SU_S3_BUCKET" \
  SWARM_UTILS_S3_ACCESS_KEY="$SU_S3_ACCESS_KEY" SWARM_UTILS_S3_SECRET_ACCESS_KEY="$SU_S3_SECRET_KEY" SWARM_UTILS_S3_PATH=demo
npm run build --silent
node dist/main.js > "$SU_STATE/log/demo-server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for i in $(seq 60); do curl -fsS "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "$URL/readyz" | jq -c .

step "CI-style update of demo-web to v2 (label token, waits for the rollout)"
curl -sS -X POST "$URL/update?service=demo-web&image=$SU_IMAGE_APP_V2&waitRes=true" -H "Authorization: Bearer demo-ci-token" \
  | jq '{id, state, error, result, steps: [.steps[] | {name, state, output}]}'

step "backup of demo-db (exec dump, stop, archive on its worker, restore, verify)"
curl -sS -X POST "$URL/jobs" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"type":"backup","service":"demo-db","waitRes":true}' | jq '{id, state, error, result, steps: [.steps[] | {name, state}]}'

step "clean of every node and enabled service"
curl -sS -X POST "$URL/clean?all=true&waitRes=true" -H "Authorization: Bearer $TOKEN" | jq '{id, state, error, result}'

step "status of demo-web"
curl -sS "$URL/service/status?service=demo-web" -H "Authorization: Bearer $TOKEN" | jq '{replicas, labels, updateStatus}'

if [ $ONCE = 1 ]; then exit 0; fi
echo
echo "swarm-utils runs on $URL (admin token: $TOKEN; log: $SU_STATE/log/demo-server.log). Ctrl-C stops it."
wait $SERVER
