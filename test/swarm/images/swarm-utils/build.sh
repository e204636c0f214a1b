#!/usr/bin/env bash
# build.sh [ref]: builds the swarm-utils image stand-in from this checkout and pushes it, by
# default as 10.77.0.1:5443/test/swarm-utils:test; prints the pushed `repo@sha256:…` on stdout.
# The Dockerfile here is the runtime stage of the repository's Dockerfile on test/node:<major of the
# node on PATH> (24 under test/node.sh, as in the Dockerfile); this
# script does what its build stage does (npm run build, npm prune --omit=dev) in a context under
# the state dir (the checkout is only read; node_modules is hard-linked, never written).
# Unchanged inputs (sources, lock files, the better-sqlite3 addon, base image) reuse the image
# pushed last time: the build itself takes ~25 s here (the daemon reads ~9k files of node_modules).
set -euo pipefail
# shellcheck source=../../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../lib.sh"

ref=${1:-$SU_REGISTRY/test/swarm-utils:test}
[[ $ref == "$SU_REGISTRY"/*:* ]] || die "usage: build.sh [$SU_REGISTRY/<name>:<tag>]"
here=$SU_HERE/images/swarm-utils
stamp_file=$SU_STATE/build/swarm-utils.$(printf '%s' "$ref" | sha256sum | cut -c1-12).inputs
node_version=$(node --version)
mkdir -p "$SU_STATE/build"

ensure_login
ensure_base_local
# the base must hold the node the tests run on (node_modules was installed and checked with it)
base_version() {
  dm image inspect "$SU_IMAGE_NODE" --format '{{range .Config.Env}}{{println .}}{{end}}' 2>/dev/null |
    sed -n 's/^NODE_VERSION=//p'
}
if ! dm image inspect "$SU_IMAGE_NODE" >/dev/null 2>&1; then
  registry_has "$SU_IMAGE_NODE" || die "$SU_IMAGE_NODE is missing: run test/swarm/up.sh"
  dm pull -q "$SU_IMAGE_NODE" >/dev/null
fi
if [[ $(base_version) != "${node_version#v}" ]]; then
  log "$SU_IMAGE_NODE holds node '$(base_version)', this host runs $node_version: rebuilding it"
  build_node_image
fi

# what the image is made of, as one hash
inputs() {
  (
    cd "$SU_PROJECT"
    echo "$node_version $(dm image inspect "$SU_IMAGE_NODE" --format '{{.Id}}')"
    find src scripts migrations public "$here/Dockerfile" "$here/build.sh" tsconfig.json tsconfig.build.json package.json package-lock.json \
      node_modules/.package-lock.json node_modules/better-sqlite3/prebuilds \
      -type f -print0 | sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -d' ' -f1
}

# the registry's manifest digest of the tag (empty if it has none)
registry_digest() {
  local path=${ref#"$SU_REGISTRY"/}
  registry_curl -I -u "$SU_REGISTRY_USER:$SU_REGISTRY_PASSWORD" \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "https://$SU_REGISTRY/v2/${path%:*}/manifests/${path##*:}" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }'
}

want=$(inputs)
if [[ -s $stamp_file ]]; then
  read -r had_inputs had_id had_digest <"$stamp_file" || true
  if [[ $had_inputs == "$want" &&
    $(dm image inspect "$ref" --format '{{.Id}}' 2>/dev/null) == "$had_id" &&
    $(registry_digest) == "${had_digest#*@}" ]]; then
    log "$ref is up to date ($had_digest)"
    echo "$had_digest"
    exit 0
  fi
fi

ctx=$(mktemp -d "$SU_STATE/build/swarm-utils.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/"

# the Dockerfile's build stage: npm run build (into a fresh dist/), npm prune --omit=dev
(cd "$SU_PROJECT" && npm run -s build -- --outDir "$ctx/dist") >&2 || die "npm run build failed"
cp -a "$SU_PROJECT/package.json" "$SU_PROJECT/package-lock.json" "$SU_PROJECT/migrations" "$SU_PROJECT/public" "$ctx/"
# the Dockerfile's stamp, with package.json's version (no revision: the image is reused across commits)
node "$SU_PROJECT/scripts/build-info.mjs" >"$ctx/build-info.json" || die "scripts/build-info.mjs failed"
(cd "$SU_PROJECT" && node -e 'new (require("better-sqlite3"))(":memory:").close()') ||
  die "node_modules has no better-sqlite3 that loads in node $node_version (run: bash test/node.sh)"
# hard links: prune only unlinks; the one file npm rewrites is a copy of its own
cp -al "$SU_PROJECT/node_modules" "$ctx/"
rm "$ctx/node_modules/.package-lock.json"
cp "$SU_PROJECT/node_modules/.package-lock.json" "$ctx/node_modules/"
if ! out=$(cd "$ctx" && npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund 2>&1); then
  printf '%s\n' "$out" >&2
  die "npm prune --omit=dev failed"
fi

build_image "$ref" "$ctx" --build-arg "BASE=$SU_IMAGE_NODE"
push_image "$ref"
digest=$(dm image inspect "$ref" --format '{{range .RepoDigests}}{{println .}}{{end}}' | grep -m1 "^${ref%:*}@" || true)
[[ -n $digest && ${digest#*@} == "$(registry_digest)" ]] || die "the registry does not serve the image just pushed as $ref"
echo "$want $(dm image inspect "$ref" --format '{{.Id}}') $digest" >"$stamp_file"
log "pushed $digest"
echo "$digest"
