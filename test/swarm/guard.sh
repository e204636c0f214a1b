# The test swarm is built on this host's own dockerd, and that daemon may already belong to a real
# swarm (the README's first commands are easily tried on a manager). up.sh, down.sh and the demo
# call swarm_guard before they change anything: on a swarm they did not create they stop with a
# message, and they never leave, join, re-initialise or empty such a swarm.
#
# "Ours" is the swarm whose manager node id and cluster id up.sh recorded in $SU_SWARM_RECORD right
# after its `swarm init`, or, on a test machine set up before that record existed, an active
# manager that advertises on the test bridge's address and whose nodes are only the test nodes
# (then the record is written).
#
# Sourced by up.sh and down.sh (after lib.sh); `bash guard.sh` runs the check alone (exit 0: no
# swarm or ours; 1: another swarm, with the reason on stderr).
# shellcheck shell=bash

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -uo pipefail
  # shellcheck source=lib.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

SU_SWARM_RECORD=${SU_SWARM_RECORD:-$SU_STATE/swarm-id}

# "<state>|<node id>|<manager: true/false>|<advertised address>|<cluster id>|<daemon name>" of the
# host's daemon; from its swarm certificate when it does not answer (a stopped daemon keeps its
# membership), "inactive" when it has none
host_swarm() {
  local info crt subject
  if info=$(timeout 10 docker -H "unix://$SU_MANAGER_SOCK" info --format \
    '{{.Swarm.LocalNodeState}}|{{.Swarm.NodeID}}|{{.Swarm.ControlAvailable}}|{{.Swarm.NodeAddr}}|{{if .Swarm.Cluster}}{{.Swarm.Cluster.ID}}{{end}}|{{.Name}}' 2>/dev/null); then
    echo "$info"
    return 0
  fi
  crt=/var/lib/docker/swarm/certificates/swarm-node.crt
  if [[ -s $crt ]] && command -v openssl >/dev/null 2>&1; then
    # CN = node id, OU = swarm-manager | swarm-worker, O = cluster id
    subject=$(openssl x509 -noout -subject -nameopt multiline -in "$crt" 2>/dev/null)
    echo "stopped|$(awk '$1 == "commonName" { print $3 }' <<<"$subject")|$(grep -q 'swarm-manager' <<<"$subject" && echo true || echo false)||$(awk '$1 == "organizationName" { print $3 }' <<<"$subject")|"
    return 0
  fi
  echo "inactive|||||"
}

# every node of the swarm is the manager itself or a test worker
only_test_nodes() {
  local self=$1 names name
  names=$(timeout 10 docker -H "unix://$SU_MANAGER_SOCK" node ls --format '{{.Hostname}}' 2>/dev/null) || return 1
  [[ -n $names ]] || return 1
  for name in $names; do
    [[ $name == "$self" || " $SU_WORKERS " == *" $name "* ]] || return 1
  done
}

# swarm_guard [--no-record]: returns 0 when the host's daemon is in no swarm or in the test swarm;
# otherwise prints why on stderr and returns 1 (nothing is changed either way, but the record)
swarm_guard() {
  local record=1 state node control addr cluster name rnode rcluster
  [[ ${1:-} == --no-record ]] && record=0
  IFS='|' read -r state node control addr cluster name <<<"$(host_swarm)"
  [[ $state == inactive || -z $state ]] && return 0
  if [[ -s $SU_SWARM_RECORD ]]; then
    read -r rnode rcluster <"$SU_SWARM_RECORD" || true
    if [[ -n $node && $node == "$rnode" && (-z $cluster || $cluster == "$rcluster") ]]; then return 0; fi
  fi
  if [[ $state == active && $control == true && $addr == "$SU_BRIDGE_IP" ]] && only_test_nodes "$name"; then
    ((record)) && swarm_record "$node" "$cluster"
    return 0
  fi
  local role=worker
  [[ $control == true ]] && role=manager
  cat >&2 <<EOF
[swarm] ERROR: this host's Docker daemon is a $role of a swarm that the test scripts did not create
[swarm]   (swarm state "$state", node ${node:-?}, cluster ${cluster:-unknown}${addr:+, address $addr}).
[swarm] The test swarm is built on the host's own daemon, so it would have to leave that swarm,
[swarm] which would take this node out of it. Nothing was changed.
[swarm] Run the demo and the tests on a disposable machine (e.g. a fresh Debian 12 VM), never on a
[swarm] node of a swarm you use.
EOF
  return 1
}

# swarm_record <node id> <cluster id>: the swarm up.sh created (or adopted) is the test swarm
swarm_record() {
  mkdir -p "$(dirname "$SU_SWARM_RECORD")"
  printf '%s %s\n' "$1" "$2" >"$SU_SWARM_RECORD"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then swarm_guard "$@"; fi
