#!/usr/bin/env bash
# build.sh: builds the test S3 server image (s3rver and its dependencies from this checkout's
# node_modules on test/node:<major of the node on PATH>) unless the registry already has it; prints its reference. The tag
# is a hash of the recipe, the packages copied and the node major, so a checkout never overwrites
# another's image.
set -euo pipefail
# shellcheck source=../../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../lib.sh"

here=$SU_HERE/images/s3rver
[[ -d $SU_PROJECT/node_modules/s3rver ]] || die "node_modules has no s3rver (run npm ci)"
packages=$(node "$here/closure.mjs" "$SU_PROJECT" s3rver)
tag=$({
  cat "$here/Dockerfile" "$here/closure.mjs"
  while IFS= read -r p; do printf '%s %s\n' "$p" "$(node -p "require('$SU_PROJECT/$p/package.json').version")"; done <<<"$packages"
  node -p 'process.versions.node.split(".")[0]'
} | sha256sum | cut -c1-12)
ref=$SU_REGISTRY/test/s3rver:$tag
if registry_has "$ref"; then
  echo "$ref"
  exit 0
fi
ensure_login
ensure_base_local
if ! dm image inspect "$SU_IMAGE_NODE" >/dev/null 2>&1; then
  registry_has "$SU_IMAGE_NODE" || die "$SU_IMAGE_NODE is missing: run test/swarm/up.sh"
  dm pull -q "$SU_IMAGE_NODE" >/dev/null
fi
mkdir -p "$SU_STATE/build"
ctx=$(mktemp -d "$SU_STATE/build/s3rver.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/"
# each package without its own node_modules (what it needs from there is in the list itself);
# hard links: the checkout is only read
while IFS= read -r p; do
  mkdir -p "$ctx/$p"
  find "$SU_PROJECT/$p" -mindepth 1 -maxdepth 1 ! -name node_modules -exec cp -al {} "$ctx/$p/" \;
done <<<"$packages"
log "building $ref ($(wc -l <<<"$packages") packages)"
build_image "$ref" "$ctx" --build-arg "BASE=$SU_IMAGE_NODE"
push_image "$ref"
echo "$ref"
