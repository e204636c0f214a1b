#!/usr/bin/env bash
# Runs a command while holding the test swarm's cluster-test lock: two runs of the cluster tests on
# one machine (two checkouts, a demo beside a test run) would stop each other's daemons and prune
# each other's images. Usage: bash test/swarm/exclusive.sh <command> [args…]
set -uo pipefail
# shellcheck source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
mkdir -p "$SU_STATE"
lock=$SU_STATE/.cluster-tests.lock
# -o: the lock stays with flock itself, so no daemon a test starts can inherit it
flock -n -o -E 200 "$lock" "$@"
rc=$?
[[ $rc == 200 ]] || exit "$rc"
echo "[swarm] another cluster test run holds $lock: waiting for it" >&2
exec flock -o "$lock" "$@"
