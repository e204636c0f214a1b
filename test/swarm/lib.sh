# Shared helpers of up.sh, down.sh, check.sh and push-app.sh. Sourced, never run.
# shellcheck shell=bash disable=SC2034

SU_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SU_PROJECT=$(cd "$SU_HERE/../.." && pwd)
# shellcheck source=env.sh
. "$SU_HERE/env.sh"

export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

# the scripts always address a daemon explicitly
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
export DOCKER_BUILDKIT=0 # legacy builder: there is no buildx here
export DOCKER_CLI_HINTS=false

SU_CA=$SU_STATE/certs/ca.crt
SU_CERTS_D=/etc/docker/certs.d/$SU_REGISTRY
SU_LOG=$SU_STATE/log
SU_RUN=$SU_STATE/run

# one up.sh / down.sh at a time
take_lock() {
  mkdir -p "$SU_STATE"
  exec 9>"$SU_STATE/.lock"
  if ! flock -n 9; then
    log "waiting for another up.sh/down.sh to finish"
    flock -w 300 9 || die "could not take $SU_STATE/.lock"
  fi
}

log() { printf '[swarm %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '[swarm] ERROR: %s\n' "$*" >&2; exit 1; }

# --- the nodes -------------------------------------------------------------------------------

worker_index() {
  case $1 in
    su-worker-1) echo 1 ;;
    su-worker-2) echo 2 ;;
    *) die "unknown worker $1" ;;
  esac
}
worker_ns() { echo "su-w$(worker_index "$1")"; }
worker_ip() { echo "10.77.0.$(($(worker_index "$1") + 1))"; }
worker_veth() { echo "su-w$(worker_index "$1")-h"; }
worker_bip() { echo "172.30.$(worker_index "$1").1/24"; }
worker_dir() { echo "$SU_STATE/nodes/$1"; }
worker_sock() { echo "$SU_STATE/sock/$1.sock"; }
worker_pidfile() { echo "$SU_RUN/$1.pid"; }
# cgroup parent of the worker's containers: lets us find them once their daemon is gone
worker_cgroup() { echo "/$1"; }

dm() { docker -H unix://"$SU_MANAGER_SOCK" "$@"; }
dw() {
  local name=$1
  shift
  docker -H "unix://$(worker_sock "$name")" "$@"
}

manager_answers() { timeout 10 docker -H unix://"$SU_MANAGER_SOCK" info --format '{{.ID}}' >/dev/null 2>&1; }
worker_answers() { timeout 10 docker -H "unix://$(worker_sock "$1")" info --format '{{.ID}}' >/dev/null 2>&1; }

# wait_for <seconds> <description> <command...>
wait_for() {
  local secs=$1 what=$2
  shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= end)); then
      log "timed out after ${secs}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

# --- processes -------------------------------------------------------------------------------

# pid_of_file <pidfile> <cmdline pattern>: the live pid recorded in the file, if its command matches
pid_of_file() {
  local file=$1 pattern=$2 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pattern" || return 1
  echo "$pid"
}

# alive <pid>: the process exists and is not a zombie (init here may reap them late)
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# stop_pid <pid> <seconds>: TERM, wait, then KILL
stop_pid() {
  local pid=$1 secs=${2:-10} end
  kill -TERM "$pid" 2>/dev/null || return 0
  end=$((SECONDS + secs))
  while alive "$pid"; do
    if ((SECONDS >= end)); then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      return 0
    fi
    sleep 0.1
  done
}

# every cgroup v1 hierarchy (or the v2 root) where the cgroup exists
cgroup_dirs() {
  local cg=$1 d
  for d in /sys/fs/cgroup/*/"${cg#/}" /sys/fs/cgroup/"${cg#/}"; do
    [[ -d $d ]] && echo "$d"
  done
  return 0
}

# kill every process in a cgroup (and below), then remove the empty cgroups
kill_cgroup() {
  local cg=$1 d pids
  for d in $(cgroup_dirs "$cg"); do
    pids=$(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
    if [[ -n $pids ]]; then
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
    fi
  done
  sleep 0.1
  for d in $(cgroup_dirs "$cg"); do
    find "$d" -depth -mindepth 1 -type d -exec rmdir {} + 2>/dev/null || true
    rmdir "$d" 2>/dev/null || true
  done
}

# kill everything left of a worker whose daemon is gone: shims and containerd in its network
# namespace, container processes in its cgroup
kill_worker_leftovers() {
  local name=$1 ns pids
  ns=$(worker_ns "$name")
  if [[ -e /var/run/netns/$ns ]]; then
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [[ -n $pids ]]; then
      log "$name: killing leftover processes in netns $ns: ${pids//$'\n'/ }"
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
    fi
  fi
  kill_cgroup "$(worker_cgroup "$name")"
}

# stop a worker's dockerd (it stops its containers and its containerd), then kill what is left
stop_worker() {
  local name=$1 pid
  if pid=$(pid_of_file "$(worker_pidfile "$name")" dockerd); then
    log "$name: stopping dockerd (pid $pid)"
    stop_pid "$pid" 30
  fi
  kill_worker_leftovers "$name"
}

# --- registry --------------------------------------------------------------------------------

registry_curl() { curl -s --max-time 10 --cacert "$SU_CA" "$@"; }

# registry_has <image ref>: the registry serves a manifest for it
registry_has() {
  local ref=$1 path name tag
  path=${ref#"$SU_REGISTRY"/}
  name=${path%:*}
  tag=${path##*:}
  [[ $(registry_curl -o /dev/null -w '%{http_code}' -I -u "$SU_REGISTRY_USER:$SU_REGISTRY_PASSWORD" \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "https://$SU_REGISTRY/v2/$name/manifests/$tag") == 200 ]]
}

# the host's docker CLI is logged in to the test registry (needed to push)
ensure_login() {
  local cfg=${DOCKER_CONFIG:-$HOME/.docker}/config.json
  if [[ -f $cfg ]] && jq -e --arg r "$SU_REGISTRY" '.auths[$r].auth // empty' "$cfg" >/dev/null 2>&1; then
    return 0
  fi
  log "docker login $SU_REGISTRY"
  printf '%s' "$SU_REGISTRY_PASSWORD" |
    dm login -u "$SU_REGISTRY_USER" --password-stdin "$SU_REGISTRY" >/dev/null 2>&1 ||
    die "docker login $SU_REGISTRY failed"
}

# build_image <ref> <context dir> [docker build options…]: legacy builder, output to the log unless it fails
build_image() {
  local ref=$1 ctx=$2 out
  shift 2
  if ! out=$(dm build "$@" -t "$ref" "$ctx" 2>&1); then
    printf '%s\n' "$out" >&2
    die "docker build of $ref failed"
  fi
}

push_image() {
  local ref=$1 out
  if ! out=$(dm push "$ref" 2>&1); then
    printf '%s\n' "$out" >&2
    die "docker push of $ref failed"
  fi
}

# the busybox base image, present on the manager (every test image is built FROM it)
ensure_base_local() {
  if dm image inspect "$SU_IMAGE_BUSYBOX" >/dev/null 2>&1; then
    return 0
  fi
  if registry_has "$SU_IMAGE_BUSYBOX"; then
    ensure_login
    dm pull -q "$SU_IMAGE_BUSYBOX" >/dev/null
    return 0
  fi
  local ctx=$SU_STATE/build/busybox
  log "building $SU_IMAGE_BUSYBOX"
  rm -rf "$ctx"
  mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/etc" "$ctx/rootfs/tmp" "$ctx/rootfs/root"
  cp "$SU_HERE/images/busybox/Dockerfile" "$ctx/"
  cp "$SU_HERE/images/busybox/passwd" "$SU_HERE/images/busybox/group" "$ctx/rootfs/etc/"
  chmod 1777 "$ctx/rootfs/tmp"
  cp "$(busybox_path)" "$ctx/rootfs/bin/busybox"
  local applet
  for applet in $("$ctx/rootfs/bin/busybox" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$ctx/rootfs/bin/$applet"
  done
  build_image "$SU_IMAGE_BUSYBOX" "$ctx"
}

busybox_path() {
  local b
  for b in /bin/busybox /usr/bin/busybox; do
    if [[ -x $b ]] && ! ldd "$b" >/dev/null 2>&1; then
      echo "$b"
      return 0
    fi
  done
  die "no statically linked busybox (apt-get install busybox-static)"
}

# copy_with_libs <binary> <rootfs>: the binary and the shared libraries ldd lists, same paths
copy_with_libs() {
  local bin=$1 root=$2 lib
  mkdir -p "$root$(dirname "$bin")"
  cp -L "$bin" "$root$bin"
  for lib in $(ldd "$bin" 2>/dev/null | grep -oE '/[^ ]+' || true); do
    [[ -e $lib ]] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# build_node_image: $SU_IMAGE_NODE from the node on PATH (the tests' node, the one node_modules'
# native addons were built for: test/node.sh), its libraries, busybox and the CA bundle; pushed.
# Needs ensure_login and ensure_base_local first.
build_node_image() {
  local ctx=$SU_STATE/build/node node version
  node=$(command -v node) || die "node is missing"
  version=$("$node" --version)
  [[ ${SU_IMAGE_NODE##*:} == "$(major=${version#v}; echo "${major%%.*}")" ]] ||
    die "$SU_IMAGE_NODE cannot hold node $version (env.sh was sourced with another node on PATH)"
  rm -rf "$ctx" && mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/etc/ssl/certs"
  cp "$SU_HERE/images/node/Dockerfile" "$ctx/"
  copy_with_libs "$node" "$ctx/rootfs"
  [[ $node == /usr/bin/node ]] || ln -sf "$node" "$ctx/rootfs/usr/bin/node"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
  local out
  if ! out=$(dm build --build-arg "NODE_VERSION=${version#v}" -t "$SU_IMAGE_NODE" "$ctx" 2>&1); then
    printf '%s\n' "$out" >&2
    die "docker build of $SU_IMAGE_NODE failed"
  fi
  push_image "$SU_IMAGE_NODE"
}
