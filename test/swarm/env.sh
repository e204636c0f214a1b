# shellcheck shell=bash disable=SC2034
# Constants of the test swarm. Source it: `. test/swarm/env.sh`.
# test/helpers/testbed.ts holds the same values for the TypeScript tests: keep them in step.

export SU_STATE=/var/lib/swarm-utils-test

# host side of the test network: the manager, the registry and the S3 server listen here
export SU_BRIDGE=su-br0
export SU_BRIDGE_IP=10.77.0.1

export SU_REGISTRY=10.77.0.1:5443
export SU_REGISTRY_USER=swarmtest
export SU_REGISTRY_PASSWORD=swarmtest-pw

export SU_S3_ENDPOINT=10.77.0.1:9000
export SU_S3_BUCKET=swarm-utils-test
export SU_S3_ACCESS_KEY=S3RVER
export SU_S3_SECRET_KEY=S3RVER

export SU_MANAGER_SOCK=/var/run/docker.sock
export SU_WORKERS="su-worker-1 su-worker-2"
export SU_WORKER1_HOSTNAME=su-worker-1
export SU_WORKER2_HOSTNAME=su-worker-2
export SU_WORKER1_SOCK=$SU_STATE/sock/su-worker-1.sock
export SU_WORKER2_SOCK=$SU_STATE/sock/su-worker-2.sock

export SU_IMAGE_BUSYBOX=$SU_REGISTRY/test/busybox:latest
export SU_IMAGE_APP_V1=$SU_REGISTRY/test/app:v1
export SU_IMAGE_APP_V2=$SU_REGISTRY/test/app:v2
export SU_IMAGE_APP_CRASH=$SU_REGISTRY/test/app:crash
export SU_IMAGE_DOCKER_CLI=$SU_REGISTRY/test/docker-cli:latest
# tagged by the content of its recipe and the Node major it is built with, so a changed stand-in is
# rebuilt (never a stale one from an earlier run) and two checkouts never overwrite each other's
su_image_tag() {
  local dir=$1 f
  {
    (cd "$dir" && find . -type f | LC_ALL=C sort | while IFS= read -r f; do
      printf '%s %s\n' "${f#./}" "$(sha256sum <"$f" | cut -d' ' -f1)"
    done)
    printf 'node %s\n' "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo none)"
  } | sha256sum | cut -c1-12
}
export SU_IMAGE_BACKUP=$SU_REGISTRY/test/backup:$(su_image_tag "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/images/backup")
# node + its libraries + busybox + CA bundle: the base of the swarm-utils image stand-in, tagged by
# the major of the node on PATH (the tests' node: test/node.sh puts the image's major there)
export SU_IMAGE_NODE=$SU_REGISTRY/test/node:$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo none)
export SU_IMAGES="$SU_IMAGE_BUSYBOX $SU_IMAGE_APP_V1 $SU_IMAGE_APP_V2 $SU_IMAGE_APP_CRASH $SU_IMAGE_DOCKER_CLI $SU_IMAGE_BACKUP $SU_IMAGE_NODE"
