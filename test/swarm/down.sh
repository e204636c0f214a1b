#!/usr/bin/env bash
# Tears the test swarm down: services removed, swarm left, worker daemons, registry and s3rver
# stopped, worker namespaces and the bridge removed.
#   --purge  also wipes /var/lib/swarm-utils-test (data roots, registry, S3 data, certs), the
#            registry's CA in /etc/docker/certs.d, the test images and the swarm state of the
#            manager, and stops the manager dockerd.
# On a host whose dockerd belongs to another swarm it stops before changing anything (guard.sh).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=guard.sh
. "$SU_HERE/guard.sh"

[[ $(id -u) == 0 ]] || die "run as root"
swarm_guard --no-record || exit 1
take_lock
purge=0
case ${1:-} in
  --purge) purge=1 ;;
  "") ;;
  *) die "usage: down.sh [--purge]" ;;
esac

remove_services() {
  manager_answers || return 0
  [[ $(dm info --format '{{.Swarm.ControlAvailable}}') == true ]] || return 0
  local ids
  ids=$(dm service ls -q)
  if [[ -n $ids ]]; then
    log "removing services: ${ids//$'\n'/ }"
    # shellcheck disable=SC2086
    dm service rm $ids >/dev/null || true
  fi
}

leave_swarm() {
  local w
  for w in $SU_WORKERS; do
    if worker_answers "$w" && [[ $(dw "$w" info --format '{{.Swarm.LocalNodeState}}') != inactive ]]; then
      log "$w: leaving the swarm"
      dw "$w" swarm leave --force >/dev/null || true
    fi
  done
  if manager_answers && [[ $(dm info --format '{{.Swarm.LocalNodeState}}') != inactive ]]; then
    log "manager: leaving the swarm"
    dm swarm leave --force >/dev/null || true
  fi
}

remove_test_images() {
  manager_answers || return 0
  local ids
  ids=$(dm image ls --format '{{.Repository}}:{{.Tag}}' | grep "^$SU_REGISTRY/" || true)
  if [[ -n $ids ]]; then
    log "removing the test images from the manager"
    # shellcheck disable=SC2086
    dm image rm --force $ids >/dev/null 2>&1 || true
  fi
  dm image prune --force >/dev/null 2>&1 || true
}

stop_service() {
  local name=$1 pattern=$2 pid
  if pid=$(pid_of_file "$SU_RUN/$name.pid" "$pattern"); then
    log "stopping $name (pid $pid)"
    stop_pid "$pid" 10
  fi
  rm -f "$SU_RUN/$name.pid"
}

stop_manager() {
  local pid
  if pid=$(pid_of_file /var/run/docker.pid dockerd); then
    log "stopping the manager dockerd (pid $pid)"
    stop_pid "$pid" 60
  fi
}

remove_network() {
  local w ns
  for w in $SU_WORKERS; do
    ns=$(worker_ns "$w")
    if [[ -e /var/run/netns/$ns ]]; then
      log "removing netns $ns"
      ip netns del "$ns" || true
    fi
    ip link del "$(worker_veth "$w")" >/dev/null 2>&1 || true
  done
  if ip link show "$SU_BRIDGE" >/dev/null 2>&1; then
    log "removing bridge $SU_BRIDGE"
    ip link del "$SU_BRIDGE"
  fi
  while iptables -D FORWARD -i "$SU_BRIDGE" -o "$SU_BRIDGE" -j ACCEPT 2>/dev/null; do :; done
}

main() {
  local w
  remove_services
  ((purge)) && remove_test_images
  leave_swarm
  for w in $SU_WORKERS; do stop_worker "$w"; done
  stop_service registry docker-registry
  stop_service s3rver s3rver
  if ((purge)); then
    stop_manager
    # a swarm the manager could not leave (daemon down) is wiped with its state
    if ! pgrep -x dockerd >/dev/null; then rm -rf /var/lib/docker/swarm; fi
  fi
  remove_network
  if ((purge)); then
    log "wiping $SU_STATE and $SU_CERTS_D"
    rm -rf "$SU_STATE" "$SU_CERTS_D"
    if [[ -f ${DOCKER_CONFIG:-$HOME/.docker}/config.json ]]; then docker logout "$SU_REGISTRY" >/dev/null 2>&1 || true; fi
  fi
  log "down"
}

main "$@"
