#!/usr/bin/env bash
# Runs a worker node's dockerd. up.sh starts it as
#   nsenter --net=/var/run/netns/<ns> unshare --uts --mount --propagation private bash node.sh …
# so it is already in the node's network namespace and in private mount and UTS namespaces.
# (`ip netns exec` cannot be used: it remounts /sys and the cgroup mounts vanish.)
set -euo pipefail

name=$1 data_root=$2 exec_root=$3 pidfile=$4 bip=$5 host_sock=$6 cgroup_parent=$7

hostname "$name"

# the host's cgroup mounts, to be repeated under a fresh /sys
cgroup_mounts=$(awk '($3 == "cgroup" || $3 == "cgroup2") && $2 ~ "^/sys/fs/cgroup" { print $2, $3, $4 }' /proc/self/mounts)

# a sysfs of this network namespace (dockerd reads /sys/class/net)
mount -t sysfs sysfs /sys
if grep -q '^/sys/fs/cgroup cgroup2 ' <<<"$cgroup_mounts"; then
  mount -t cgroup2 cgroup2 /sys/fs/cgroup # pure cgroup v2 host
else
  mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
  while read -r mp type opts; do
    [[ -n $mp ]] || continue
    mkdir -p "$mp"
    mount -t "$type" -o "$opts" "$type" "$mp"
  done <<<"$cgroup_mounts"
fi

# a /run of its own: /var/run/docker.sock in this namespace is this node's daemon, and
# containerd's shim sockets and runc state do not meet the other daemons'
mount -t tmpfs -o mode=755 tmpfs /run

mkdir -p "$data_root" "$exec_root" "$(dirname "$pidfile")" "$(dirname "$host_sock")"
# a configuration of its own (not the host's /etc/docker/daemon.json) and its own identity key
# (not /etc/docker/key.json): `docker info` shows each node with a distinct engine ID
config=$(dirname "$data_root")/daemon.json
printf '{ "deprecated-key-path": "%s/key.json" }\n' "$(dirname "$data_root")" >"$config"
exec dockerd \
  --config-file "$config" \
  --data-root "$data_root" \
  --exec-root "$exec_root" \
  --pidfile "$pidfile" \
  --bip "$bip" \
  --cgroup-parent "$cgroup_parent" \
  -H unix:///run/docker.sock \
  -H "unix://$host_sock"
