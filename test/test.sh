#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root) or a developer's checkout:
# installs what is missing, brings up the real test swarm (manager + 2 workers, registry, S3),
# type-checks, runs the unit tests, then the cluster tests against the swarm.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CI="${CI:-}"
REPORTS="$(mktemp -d)"

step() { printf '\n==> %s\n' "$*"; }

need_node() {
  if command -v node >/dev/null && node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then return; fi
  step "installing Node.js and npm (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  if ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
    echo "FAILED: node: swarm-utils needs Node.js >= 20 (found $(node --version)); install Node 20 (e.g. from NodeSource) and run again" >&2
    exit 1
  fi
}

need_node
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm ci"
  npm ci --no-audit --no-fund
fi

# the web console's browser tests drive Debian's chromium (playwright-core downloads no browser)
if [ ! -x /usr/bin/chromium ]; then
  step "installing chromium (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

step "test swarm"
bash test/swarm/up.sh

step "typecheck"
npx tsc -p tsconfig.json --noEmit

status=0
step "unit tests"
npx vitest run --project unit --reporter=default --reporter=json --outputFile="$REPORTS/unit.json" || status=1
step "cluster tests (real swarm)"
bash test/swarm/exclusive.sh npx vitest run --project cluster --reporter=default --reporter=json --outputFile="$REPORTS/cluster.json" || status=1

# one closing line that any CI reads: "N passed, N failed"
node -e '
  const fs = require("fs");
  let p = 0, f = 0, s = 0;
  for (const file of process.argv.slice(1)) {
    if (!fs.existsSync(file)) { f++; continue; }
    const r = JSON.parse(fs.readFileSync(file, "utf8"));
    p += r.numPassedTests; f += r.numFailedTests + (r.numRuntimeErrors || 0); s += r.numPendingTests + (r.numTodoTests || 0);
  }
  console.log(`\n${p} passed, ${f} failed, ${s} skipped`);
' "$REPORTS/unit.json" "$REPORTS/cluster.json"
exit $status
