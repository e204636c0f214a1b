#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root) or a developer's checkout:
# installs what is missing (Node 24 into .node/ when the machine's is another major, node_modules),
# brings up the real test swarm (manager + 2 workers, registry, S3),
# type-checks, runs the unit tests, then the cluster tests against the swarm.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CI="${CI:-}"
REPORTS="$(mktemp -d)"

step() { printf '\n==> %s\n' "$*"; }

# Node 24 (the image's major) first on PATH, from the npm registry when the machine has another
# major; node_modules installed and built for it (test/node.sh)
step "Node and node_modules (test/node.sh)"
. test/node.sh
echo "node $(node --version) ($(command -v node))"

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
    // a file that failed outside its tests (beforeAll, an import): counted once, its tests show as skipped
    f += (r.testResults || []).filter((t) => t.status === "failed" && !(t.assertionResults || []).some((a) => a.status === "failed")).length;
  }
  console.log(`\n${p} passed, ${f} failed, ${s} skipped`);
' "$REPORTS/unit.json" "$REPORTS/cluster.json"
exit $status
