#!/usr/bin/env bash
# push-app.sh <tag> <marker>: builds test/app with /version holding <marker> and pushes it as
# 10.77.0.1:5443/test/app:<tag>. Tests use it to put a new digest under an existing tag.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 2)) || die "usage: push-app.sh <tag> <marker>"
tag=$1 marker=$2
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid tag: $tag"
ref=$SU_REGISTRY/test/app:$tag

ensure_login
ensure_base_local
mkdir -p "$SU_STATE/build"
ctx=$(mktemp -d "$SU_STATE/build/app.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
cp "$SU_HERE/images/app/Dockerfile" "$ctx/"
printf '%s' "$marker" >"$ctx/version"
build_image "$ref" "$ctx"
push_image "$ref"
log "pushed $ref (/version: $marker)"
