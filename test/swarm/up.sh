#!/usr/bin/env bash
# Brings up the test swarm on this machine (Debian 12, as root); idempotent, and quick when it
# already runs. README "The test swarm" says why it is built this way.
#   manager   the host's own dockerd (/var/run/docker.sock), swarm address 10.77.0.1
#   workers   su-worker-1 (10.77.0.2), su-worker-2 (10.77.0.3): a dockerd each in its own
#             network namespace on bridge su-br0, reached at $SU_STATE/sock/<name>.sock
#   registry  https://10.77.0.1:5443 (self-signed CA, htpasswd auth) with the test images
#   s3        s3rver at http://10.77.0.1:9000, bucket swarm-utils-test
# State: /var/lib/swarm-utils-test. Tear-down: down.sh. Health: check.sh (run at the end).
# On a host whose dockerd already belongs to another swarm it stops before changing anything
# (guard.sh): it never leaves, joins or re-initialises a swarm it did not create.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=guard.sh
. "$SU_HERE/guard.sh"

[[ $(id -u) == 0 ]] || die "run as root"
swarm_guard || exit 1
take_lock

ensure_packages() {
  local -A pkg_of=(
    [dockerd]=docker.io [containerd]=docker.io [runc]=docker.io [docker-registry]=docker-registry
    [htpasswd]=apache2-utils [ip]=iproute2 [openssl]=openssl [jq]=jq [nsenter]=util-linux
    [unshare]=util-linux [curl]=curl [iptables]=iptables
  )
  local bin missing=()
  for bin in "${!pkg_of[@]}"; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("${pkg_of[$bin]}")
  done
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
  ((${#missing[@]})) || return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_dirs() {
  mkdir -p "$SU_STATE"/{sock,run,log,certs,auth,build,registry/data,s3} "$SU_CERTS_D"
  local w
  for w in $SU_WORKERS; do mkdir -p "$(worker_dir "$w")/data"; done
}

ensure_bridge() {
  if ! ip link show "$SU_BRIDGE" >/dev/null 2>&1; then
    log "creating bridge $SU_BRIDGE"
    ip link add "$SU_BRIDGE" type bridge
  fi
  ip addr replace "$SU_BRIDGE_IP/24" dev "$SU_BRIDGE"
  ip link set "$SU_BRIDGE" up
}

# --- manager ---------------------------------------------------------------------------------

# containers of an earlier manager dockerd whose shim is gone (killed with containerd) keep
# running unsupervised; the restarted daemon would only mark them exited
kill_manager_orphans() {
  local d id
  for d in /sys/fs/cgroup/pids/docker/*/ /sys/fs/cgroup/docker/*/; do
    [[ -d $d ]] || continue
    id=$(basename "$d")
    [[ $id =~ ^[0-9a-f]{64}$ ]] || continue
    pgrep -f -- "-id $id" >/dev/null 2>&1 && continue
    log "manager: killing orphaned container $id"
    kill_cgroup "/docker/$id"
  done
}

start_manager() {
  manager_answers && return 0
  if pgrep -x dockerd >/dev/null && pid_of_file /var/run/docker.pid dockerd >/dev/null; then
    # a daemon is starting up (or hangs): give it a moment before deciding
    wait_for 20 "manager dockerd" manager_answers && return 0
    die "a manager dockerd (pid $(</var/run/docker.pid)) runs but does not answer"
  fi
  kill_manager_orphans
  # a containerd killed a moment ago can still be a zombie (this machine's init reaps late):
  # dockerd would take its pid file for a live containerd and wait for it in vain
  local pid
  pid=$(cat /var/run/docker/containerd/containerd.pid 2>/dev/null || true)
  if [[ -n $pid ]] && ! alive "$pid"; then rm -f /var/run/docker/containerd/containerd.pid; fi
  log "starting manager dockerd (log: $SU_LOG/manager-dockerd.log)"
  rm -f /var/run/docker.pid
  setsid dockerd </dev/null >>"$SU_LOG/manager-dockerd.log" 2>&1 9>&- &
}

# with br_netfilter loaded, frames bridged between the workers pass the host's FORWARD chain,
# whose policy dockerd sets to DROP
ensure_forward_rule() {
  iptables -C FORWARD -i "$SU_BRIDGE" -o "$SU_BRIDGE" -j ACCEPT 2>/dev/null ||
    iptables -I FORWARD -i "$SU_BRIDGE" -o "$SU_BRIDGE" -j ACCEPT
}

# --- workers ---------------------------------------------------------------------------------

# a fresh network namespace for a worker that is about to start
create_worker_netns() {
  local name=$1 ns
  ns=$(worker_ns "$name")
  [[ -e /var/run/netns/$ns ]] && ip netns del "$ns"
  ip link del "$(worker_veth "$name")" >/dev/null 2>&1 || true
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ensure_worker_link "$name"
}

# the worker's veth pair, on the bridge (also repairs a running worker's link after the bridge
# or the veth was deleted)
ensure_worker_link() {
  local name=$1 ns veth
  ns=$(worker_ns "$name")
  veth=$(worker_veth "$name")
  if ! ip link show "$veth" >/dev/null 2>&1; then
    ip -n "$ns" link del eth0 >/dev/null 2>&1 || true
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip -n "$ns" addr add "$(worker_ip "$name")/24" dev eth0
    ip -n "$ns" link set eth0 up
  fi
  ip link set "$veth" master "$SU_BRIDGE" up
  # no default route on purpose: a worker reaches only the test network, so a lookup of an
  # image that is not in the test registry fails at once instead of leaving the machine
}

# the manager's swarm node ID, from its certificate (the daemon may still be starting)
manager_swarm_node_id() {
  local crt=/var/lib/docker/swarm/certificates/swarm-node.crt
  [[ -f $crt ]] || return 0
  openssl x509 -noout -subject -nameopt multiline -in "$crt" | awk '$1 == "commonName" { print $3 }'
}

# the stopped worker remembers a swarm whose manager is not ours any more (the manager's swarm
# was reset). Started like that, its dockerd would not answer for 20 s (swarm start timeout).
worker_state_stale() {
  local state mgr
  state=$(worker_dir "$1")/data/swarm/state.json
  [[ -s $state ]] || return 1
  mgr=$(manager_swarm_node_id)
  [[ -n $mgr ]] || return 0
  ! jq -e --arg m "$mgr" 'map(.node_id) | index($m)' "$state" >/dev/null 2>&1
}

start_worker() {
  local name=$1 dir pidfile
  if worker_answers "$name"; then
    ensure_worker_link "$name"
    return 0
  fi
  dir=$(worker_dir "$name")
  pidfile=$(worker_pidfile "$name")
  if pid_of_file "$pidfile" dockerd >/dev/null; then
    wait_for 20 "$name dockerd" worker_answers "$name" && return 0
    log "$name: dockerd runs but does not answer: restarting it"
    stop_worker "$name"
  fi
  kill_worker_leftovers "$name"
  if worker_state_stale "$name"; then
    # reset: a clean data root, it joins the current swarm below
    log "$name: its swarm state belongs to an old swarm: wiping its data root"
    rm -rf "$dir/data"
  fi
  create_worker_netns "$name"
  rm -rf "$dir/exec" "$pidfile"
  [[ -f $SU_LOG/$name.log ]] && mv -f "$SU_LOG/$name.log" "$SU_LOG/$name.log.1"
  log "starting $name dockerd (log: $SU_LOG/$name.log)"
  setsid nsenter --net="/var/run/netns/$(worker_ns "$name")" \
    unshare --uts --mount --propagation private \
    bash "$SU_HERE/node.sh" "$name" "$dir/data" "$dir/exec" "$pidfile" "$(worker_bip "$name")" \
    "$(worker_sock "$name")" "$(worker_cgroup "$name")" \
    </dev/null >"$SU_LOG/$name.log" 2>&1 9>&- &
}

# --- registry --------------------------------------------------------------------------------

ensure_certs() {
  local c=$SU_STATE/certs
  if [[ ! -s $c/server.crt || ! -s $c/server.key || ! -s $c/ca.crt ]] ||
    ! openssl verify -CAfile "$c/ca.crt" "$c/server.crt" >/dev/null 2>&1; then
    log "creating the registry's CA and certificate"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -keyout "$c/ca.key" -out "$c/ca.crt" -subj "/CN=swarm-utils test CA" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -sha256 \
      -keyout "$c/server.key" -out "$c/server.csr" -subj "/CN=$SU_BRIDGE_IP" 2>/dev/null
    printf '%s\n' "subjectAltName=IP:$SU_BRIDGE_IP" "basicConstraints=CA:FALSE" \
      "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$c/server.ext"
    openssl x509 -req -sha256 -days 3650 -in "$c/server.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" \
      -CAcreateserial -extfile "$c/server.ext" -out "$c/server.crt" 2>/dev/null
    chmod 600 "$c/ca.key" "$c/server.key"
  fi
  # every daemon on this machine (manager and workers) trusts the registry through this file
  cmp -s "$c/ca.crt" "$SU_CERTS_D/ca.crt" || cp "$c/ca.crt" "$SU_CERTS_D/ca.crt"

  local pw=$SU_STATE/auth/htpasswd
  if ! htpasswd -vb "$pw" "$SU_REGISTRY_USER" "$SU_REGISTRY_PASSWORD" >/dev/null 2>&1; then
    htpasswd -Bbn "$SU_REGISTRY_USER" "$SU_REGISTRY_PASSWORD" >"$pw"
  fi
}

registry_answers() {
  [[ $(registry_curl -o /dev/null -w '%{http_code}' "https://$SU_REGISTRY/v2/") == 401 ]]
}

start_registry() {
  local conf=$SU_STATE/registry/config.yml
  cat >"$conf.new" <<EOF
version: 0.1
log:
  level: warn
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $SU_STATE/registry/data
  delete:
    enabled: true
http:
  addr: $SU_REGISTRY
  tls:
    certificate: $SU_STATE/certs/server.crt
    key: $SU_STATE/certs/server.key
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: swarm-utils-test
    path: $SU_STATE/auth/htpasswd
EOF
  local pid
  if cmp -s "$conf.new" "$conf"; then
    rm -f "$conf.new"
    registry_answers && return 0
  else
    mv -f "$conf.new" "$conf"
  fi
  if pid=$(pid_of_file "$SU_RUN/registry.pid" docker-registry); then stop_pid "$pid" 5; fi
  log "starting registry on $SU_REGISTRY (log: $SU_LOG/registry.log)"
  setsid docker-registry serve "$conf" </dev/null >>"$SU_LOG/registry.log" 2>&1 9>&- &
  echo $! >"$SU_RUN/registry.pid"
}

# --- s3 --------------------------------------------------------------------------------------

s3_answers() {
  [[ $(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$SU_S3_ENDPOINT/$SU_S3_BUCKET") == 200 ]]
}

start_s3() {
  s3_answers && return 0
  local pid
  if pid=$(pid_of_file "$SU_RUN/s3rver.pid" s3rver); then stop_pid "$pid" 5; fi
  if [[ ! -x $SU_PROJECT/node_modules/.bin/s3rver ]]; then
    log "node_modules is missing: npm ci"
    (cd "$SU_PROJECT" && npm ci --no-audit --no-fund) >&2
  fi
  log "starting s3rver on $SU_S3_ENDPOINT (log: $SU_LOG/s3rver.log)"
  # it stores objects as files under $SU_STATE/s3 and creates the bucket if it is missing
  setsid "$SU_PROJECT/node_modules/.bin/s3rver" --directory "$SU_STATE/s3" \
    --address "$SU_BRIDGE_IP" --port "${SU_S3_ENDPOINT##*:}" --configure-bucket "$SU_S3_BUCKET" \
    </dev/null >>"$SU_LOG/s3rver.log" 2>&1 9>&- &
  echo $! >"$SU_RUN/s3rver.pid"
}

# --- swarm -----------------------------------------------------------------------------------

manager_not_pending() { [[ $(dm info --format '{{.Swarm.LocalNodeState}}') != pending ]]; }

ensure_manager_swarm() {
  local state
  state=$(dm info --format '{{.Swarm.LocalNodeState}}')
  if [[ $state == pending ]]; then
    wait_for 20 "the manager's swarm state to settle" manager_not_pending || true
    state=$(dm info --format '{{.Swarm.LocalNodeState}}')
  fi
  if [[ $state == active &&
    $(dm info --format '{{.Swarm.ControlAvailable}} {{.Swarm.NodeAddr}}') == "true $SU_BRIDGE_IP" ]]; then
    return 0
  fi
  if [[ $state != inactive ]]; then
    # checked again here: the daemon may have started only after the first check
    swarm_guard || exit 1
    log "manager: our swarm is in state '$state': leaving it to start afresh"
    dm swarm leave --force >/dev/null
  fi
  log "manager: swarm init"
  dm swarm init --advertise-addr "$SU_BRIDGE_IP" --listen-addr "$SU_BRIDGE_IP:2377" >/dev/null
  swarm_record "$(dm info --format '{{.Swarm.NodeID}}')" "$(dm info --format '{{.Swarm.Cluster.ID}}')"
}

node_ready() { [[ $(dm node inspect "$1" --format '{{.Status.State}}' 2>/dev/null) == ready ]]; }

# the worker is in the manager's swarm (not a stale one) and Ready
worker_in_swarm() {
  local name=$1 info mgr_id node_id
  mgr_id=$(dm info --format '{{.Swarm.NodeID}}')
  info=$(dw "$name" info --format '{{json .Swarm}}')
  [[ $(jq -r .LocalNodeState <<<"$info") == active ]] || return 1
  jq -e --arg m "$mgr_id" '[.RemoteManagers[]?.NodeID] | index($m)' <<<"$info" >/dev/null || return 1
  node_id=$(jq -r .NodeID <<<"$info")
  node_ready "$node_id"
}

worker_stale() {
  local name=$1 info mgr_id
  mgr_id=$(dm info --format '{{.Swarm.NodeID}}')
  info=$(dw "$name" info --format '{{json .Swarm}}')
  case $(jq -r .LocalNodeState <<<"$info") in
    inactive) return 1 ;;
    error | locked) return 0 ;;
  esac
  # managers it remembers are not ours: a swarm that was reset
  ! jq -e --arg m "$mgr_id" '[.RemoteManagers[]?.NodeID] | index($m)' <<<"$info" >/dev/null
}

join_worker() {
  local name=$1 token
  if worker_in_swarm "$name"; then return 0; fi
  if [[ $(dw "$name" info --format '{{.Swarm.LocalNodeState}}') != inactive ]]; then
    # it may be reconnecting after a restart: give it a moment
    if ! worker_stale "$name" && wait_for 30 "$name to rejoin the swarm" worker_in_swarm "$name"; then
      return 0
    fi
    log "$name: leaving its stale swarm"
    dw "$name" swarm leave --force >/dev/null
  fi
  token=$(dm swarm join-token -q worker)
  log "$name: joining the swarm"
  dw "$name" swarm join --advertise-addr "$(worker_ip "$name")" --listen-addr "$(worker_ip "$name"):2377" \
    --token "$token" "$SU_BRIDGE_IP:2377" >/dev/null
  wait_for 60 "$name to be Ready" worker_in_swarm "$name"
}

# nodes that are not (any more) part of the test swarm: Down entries of earlier runs
remove_stale_nodes() {
  local keep id w
  keep=" $(dm info --format '{{.Swarm.NodeID}}') "
  for w in $SU_WORKERS; do keep+="$(dw "$w" info --format '{{.Swarm.NodeID}}') "; done
  for id in $(dm node ls -q); do
    [[ $keep == *" $id "* ]] && continue
    log "removing stale node $id ($(dm node inspect "$id" --format '{{.Description.Hostname}} {{.Status.State}}'))"
    dm node demote "$id" >/dev/null 2>&1 || true
    dm node rm --force "$id" >/dev/null
  done
  # a test may have drained a node and failed before undoing it
  for id in $(dm node ls -q); do
    if [[ $(dm node inspect "$id" --format '{{.Spec.Availability}}') != active ]]; then
      log "setting node $id active again"
      dm node update --availability active "$id" >/dev/null
    fi
  done
}

# --- images ----------------------------------------------------------------------------------

build_app() { bash "$SU_HERE/push-app.sh" "$1" "$2"; }

build_crash() {
  local ctx=$SU_STATE/build/app-crash
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$SU_HERE/images/app-crash/Dockerfile" "$ctx/"
  printf 'crash' >"$ctx/version"
  build_image "$SU_IMAGE_APP_CRASH" "$ctx"
  push_image "$SU_IMAGE_APP_CRASH"
}

build_docker_cli() {
  local ctx=$SU_STATE/build/docker-cli bin
  bin=$(command -v docker)
  rm -rf "$ctx" && mkdir -p "$ctx/rootfs/usr/local/bin"
  cp "$SU_HERE/images/docker-cli/Dockerfile" "$ctx/"
  if ldd "$bin" >/dev/null 2>&1; then
    copy_with_libs "$bin" "$ctx/rootfs" # a dynamically linked client: bring its libraries
    [[ $bin == /usr/local/bin/docker ]] || ln -sf "$bin" "$ctx/rootfs/usr/local/bin/docker"
  else
    cp "$bin" "$ctx/rootfs/usr/local/bin/docker"
  fi
  build_image "$SU_IMAGE_DOCKER_CLI" "$ctx"
  push_image "$SU_IMAGE_DOCKER_CLI"
}

build_backup() {
  local ctx=$SU_STATE/build/backup node
  node=$(command -v node) || die "node is missing"
  rm -rf "$ctx" && mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/etc/ssl/certs"
  cp "$SU_HERE/images/backup/Dockerfile" "$SU_HERE/images/backup/backup.mjs" "$ctx/"
  chmod 755 "$ctx/backup.mjs"
  copy_with_libs "$node" "$ctx/rootfs"
  [[ $node == /usr/bin/node ]] || ln -sf "$node" "$ctx/rootfs/usr/bin/node" # the script's #!
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
  build_image "$SU_IMAGE_BACKUP" "$ctx"
  push_image "$SU_IMAGE_BACKUP"
}

ensure_images() {
  local missing=() ref
  for ref in $SU_IMAGES; do registry_has "$ref" || missing+=("$ref"); done
  ((${#missing[@]})) || return 0
  ensure_login
  ensure_base_local
  for ref in "${missing[@]}"; do
    log "building and pushing $ref"
    case $ref in
      "$SU_IMAGE_BUSYBOX") push_image "$ref" ;;
      "$SU_IMAGE_APP_V1") build_app v1 v1 ;;
      "$SU_IMAGE_APP_V2") build_app v2 v2 ;;
      "$SU_IMAGE_APP_CRASH") build_crash ;;
      "$SU_IMAGE_DOCKER_CLI") build_docker_cli ;;
      "$SU_IMAGE_BACKUP") build_backup ;;
      "$SU_IMAGE_NODE") build_node_image ;;
      *) die "no recipe for $ref" ;;
    esac
  done
}

# --- main ------------------------------------------------------------------------------------

main() {
  local t0=$SECONDS w
  ensure_packages
  ensure_dirs
  ensure_bridge
  ensure_certs

  # start whatever is not running, all at once, then wait for each
  start_manager
  for w in $SU_WORKERS; do start_worker "$w"; done
  start_registry
  start_s3

  wait_for 60 "manager dockerd" manager_answers || die "manager dockerd does not answer: see $SU_LOG/manager-dockerd.log"
  for w in $SU_WORKERS; do
    wait_for 60 "$w dockerd" worker_answers "$w" || die "$w dockerd does not answer: see $SU_LOG/$w.log"
  done
  wait_for 30 registry registry_answers || die "the registry does not answer: see $SU_LOG/registry.log"
  wait_for 60 s3rver s3_answers || die "s3rver does not answer: see $SU_LOG/s3rver.log"
  ensure_forward_rule

  ensure_manager_swarm
  for w in $SU_WORKERS; do join_worker "$w"; done
  remove_stale_nodes

  ensure_images
  log "up in $((SECONDS - t0))s"
  bash "$SU_HERE/check.sh"
}

main "$@"
