#!/usr/bin/env bash
# Checks every part of the test swarm. Prints `FAILED: <component>: <reason>` for each broken
# part and exits 1, or prints `testbed OK` and exits 0. Starts nothing (that is up.sh).
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

failures=0
fail() {
  echo "FAILED: $1: $2"
  failures=$((failures + 1))
}

check_manager() {
  manager_answers || { fail manager-dockerd "no answer on $SU_MANAGER_SOCK (up.sh starts it)"; return 1; }
}

check_worker() {
  local name=$1 sock hostname
  sock=$(worker_sock "$name")
  if ! worker_answers "$name"; then
    fail "$name" "no dockerd answers on $sock"
    return 1
  fi
  hostname=$(dw "$name" info --format '{{.Name}}' 2>&1)
  [[ $hostname == "$name" ]] || fail "$name" "the daemon on $sock is '$hostname', not $name"
}

check_swarm() {
  local manager_ok=$1 info nodes want w bad
  ((manager_ok)) || { fail swarm "the manager does not answer"; return; }
  info=$(dm info --format '{{json .Swarm}}')
  if [[ $(jq -r '"\(.LocalNodeState) \(.ControlAvailable) \(.NodeAddr)"' <<<"$info") != "active true $SU_BRIDGE_IP" ]]; then
    fail swarm "the manager is not an active swarm manager at $SU_BRIDGE_IP ($(jq -c '{LocalNodeState, ControlAvailable, NodeAddr, Error}' <<<"$info"))"
    return
  fi
  # hostname state availability, one line per node
  nodes=$(dm node ls -q | xargs -r docker -H "unix://$SU_MANAGER_SOCK" node inspect \
    --format '{{.Description.Hostname}} {{.Status.State}} {{.Spec.Availability}}')
  want="$(dm info --format '{{.Name}}') $SU_WORKERS"
  for w in $want; do
    grep -qx "$w ready active" <<<"$nodes" || fail swarm "node $w is not Ready and Active: $(grep "^$w " <<<"$nodes" | paste -sd, - || true)"
  done
  bad=$(grep -vx -e "$(dm info --format '{{.Name}}') ready active" -e "su-worker-1 ready active" -e "su-worker-2 ready active" <<<"$nodes")
  [[ -z $bad ]] || fail swarm "unexpected nodes: $(paste -sd, - <<<"$bad")"
  (($(wc -l <<<"$nodes") == 3)) || fail swarm "$(wc -l <<<"$nodes") nodes, expected 3"
}

check_registry() {
  local code
  [[ -s $SU_CERTS_D/ca.crt ]] || { fail registry "$SU_CERTS_D/ca.crt is missing"; return 1; }
  code=$(curl -s --max-time 5 --cacert "$SU_CERTS_D/ca.crt" -o /dev/null -w '%{http_code}' "https://$SU_REGISTRY/v2/")
  [[ $code == 401 ]] || { fail registry "https://$SU_REGISTRY/v2/ without credentials answered '$code' (expected 401; 000 = no TLS connection)"; return 1; }
  code=$(curl -s --max-time 5 --cacert "$SU_CERTS_D/ca.crt" -o /dev/null -w '%{http_code}' \
    -u "$SU_REGISTRY_USER:$SU_REGISTRY_PASSWORD" "https://$SU_REGISTRY/v2/_catalog")
  [[ $code == 200 ]] || { fail registry "the catalog with credentials answered '$code'"; return 1; }
}

check_images() {
  local ref
  for ref in $SU_IMAGES; do
    registry_has "$ref" || fail "image ${ref#"$SU_REGISTRY"/}" "not present in the registry (up.sh builds it)"
  done
}

check_s3() {
  local url=http://$SU_S3_ENDPOINT/$SU_S3_BUCKET code ns
  code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$url")
  [[ $code == 200 ]] || fail s3 "$url answered '$code' from the host"
  ns=$(worker_ns su-worker-1)
  if [[ -e /var/run/netns/$ns ]]; then
    code=$(nsenter --net="/var/run/netns/$ns" curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$url")
    [[ $code == 200 ]] || fail s3 "$url answered '$code' from netns $ns"
  else
    fail s3 "netns $ns is missing: cannot check the bucket from a worker"
  fi
}

main() {
  local manager_ok=0 w
  check_manager && manager_ok=1
  for w in $SU_WORKERS; do check_worker "$w"; done
  check_swarm "$manager_ok"
  check_registry && check_images
  check_s3
  if ((failures)); then
    echo "testbed NOT OK: $failures failure(s); run test/swarm/up.sh"
    exit 1
  fi
  echo "testbed OK"
}

main "$@"
