/**
 * The shell run by node helpers (Docker CLI image: busybox or GNU userland) to bring an archive onto a
 * node and, for a restore, to swap it into the volume. Nothing from a request is interpolated: every
 * value reaches the script through the environment, the presigned URL and a passphrase through files
 * (Docker secrets). Lines the server reads back:
 *   swarm-utils-phase <name>                        progress
 *   swarm-utils-error <kind> <message>              why it failed (kind: download, decrypt, unpack, layout, missing-tool, swap, other)
 *   swarm-utils-count files=<n> bytes=<n>           count_tree of the tree (tree-count.ts)
 *
 * The work directory `$SU_WORK` holds the download, the unpacked tree (`new/`), the old content during a
 * swap (`old/`) and a `state` file written by rename: downloading → unpacking → unpacked → out → in → done.
 * A helper that finds a state it can go on from goes on; anything earlier than `unpacked` starts over.
 */
import { COUNT_TREE_SH } from '../tree-count.js';

const COMMON = [
  'set -u',
  'W="$SU_WORK"',
  COUNT_TREE_SH,
  'state() { cat "$W/state" 2>/dev/null || true; }',
  'setstate() { echo "$1" > "$W/state.new" && mv "$W/state.new" "$W/state"; }',
  'oneline() { tail -c 600 "$1" 2>/dev/null | tr "\\n" " "; }',
].join('\n');

/** exit codes of FETCH_SH, and what they mean to the job */
export const FETCH_EXIT = { download: 10, broken: 11, missingTool: 12, layout: 13, other: 14 } as const;

/**
 * Download (wget of the presigned URL in $SU_URL_FILE) and unpack into $SU_WORK/new, then count
 * $SU_WORK/new/backup/$SU_VOLUME. The fallback of a process that cannot name the swarm-utils image
 * (fetch.ts): plain gzip archives only. The fetch is otherwise src/helper/restore.ts, with the same
 * protocol. $SU_DECRYPT is empty, `gpg` or `age` (passphrase in $SU_PASS_FILE), for an image that has the tools.
 * On any failure the work directory is removed: what was beside it is untouched.
 */
export const FETCH_SH = [
  COMMON,
  'fail() { code=$1; shift; echo "swarm-utils-error $*"; rm -rf "$W"; exit "$code"; }',
  'case "$(state)" in',
  '  unpacked|out|in|done) echo "swarm-utils-phase already-unpacked"; cat "$W/count"; exit 0 ;;',
  'esac',
  'rm -rf "$W"',
  'mkdir -p "$W/new" || fail 14 other "cannot create the work directory $W"',
  'case "${SU_DECRYPT:-}" in',
  '  gpg) command -v gpg >/dev/null 2>&1 || fail 12 missing-tool gpg ;;',
  '  age) { command -v age >/dev/null 2>&1 && command -v age-plugin-batchpass >/dev/null 2>&1; } || fail 12 missing-tool "age and age-plugin-batchpass" ;;',
  'esac',
  'setstate downloading',
  'echo "swarm-utils-phase download"',
  'wget -q -O "$W/archive" "$(cat "$SU_URL_FILE")" 2>"$W/wget.err" || fail 10 download "$(oneline "$W/wget.err")"',
  '[ -s "$W/archive" ] || fail 10 download "the object is empty"',
  'echo "swarm-utils-phase downloaded $(stat -c %s "$W/archive") bytes"',
  'setstate unpacking',
  'echo "swarm-utils-phase unpack"',
  'decrypt() {',
  '  case "${SU_DECRYPT:-}" in',
  '    gpg) mkdir -m 700 -p "$W/gnupg" && gpg --homedir "$W/gnupg" --batch --quiet --no-tty --pinentry-mode loopback --passphrase-file "$SU_PASS_FILE" --decrypt "$W/archive" ;;',
  '    age) AGE_PASSPHRASE="$(cat "$SU_PASS_FILE")" age -d -j batchpass "$W/archive" ;;',
  '    *) cat "$W/archive" ;;',
  '  esac',
  '}',
  '( decrypt 2>"$W/dec.err" || echo $? >"$W/dec.rc" ) | ( tar xzf - -C "$W/new" 2>"$W/tar.err" || echo $? >"$W/tar.rc" )',
  // a decrypt killed by SIGPIPE (141) only means tar stopped reading: tar says why
  'if [ -s "$W/dec.rc" ] && [ "$(cat "$W/dec.rc")" != 141 ] && [ -n "${SU_DECRYPT:-}" ]; then fail 11 decrypt "$(oneline "$W/dec.err")"; fi',
  'if [ -s "$W/tar.rc" ]; then fail 11 unpack "the archive is truncated or corrupt: $(oneline "$W/tar.err")"; fi',
  'if [ -s "$W/dec.rc" ] && [ "$(cat "$W/dec.rc")" != 141 ]; then fail 11 unpack "could not read the download: $(oneline "$W/dec.err")"; fi',
  '[ -d "$W/new/backup/$SU_VOLUME" ] || fail 13 layout "the archive holds no backup/$SU_VOLUME/ directory (it holds: $(ls "$W/new" | head -5 | tr "\\n" " "))"',
  'rm -f "$W/archive"',
  'count_tree "$W/new/backup/$SU_VOLUME" >"$W/count" || fail 14 other "could not count the unpacked tree"',
  'setstate unpacked',
  'echo "swarm-utils-phase unpacked"',
  'cat "$W/count"',
].join('\n');

export const SWAP_EXIT = { incomplete: 15, failed: 16 } as const;

/**
 * Makes the volume mounted at /vol hold exactly $SU_WORK/new/backup/$SU_VOLUME: the old top-level entries
 * move into $SU_WORK/old (state `out`), then the new ones up (state `in`), then the work directory goes
 * (`done`). Renames only, each atomic; a helper started again in any state finishes the swap. TERM is
 * ignored: a stop of the helper must not leave the volume between the two trees.
 */
export const SWAP_SH = [
  COMMON,
  "trap '' TERM INT HUP",
  'V=/vol',
  'moveall() {',
  '  for e in "$1"/* "$1"/.[!.]* "$1"/..?*; do',
  '    [ -e "$e" ] || [ -L "$e" ] || continue',
  '    [ "$e" = "$3" ] && continue',
  '    mv "$e" "$2"/ || return 1',
  '  done',
  '}',
  'if [ ! -d "$W" ]; then',
  '  rm -rf "$W.trash"',
  '  echo "swarm-utils-phase already-swapped"',
  '  count_tree "$V"',
  '  exit $?',
  'fi',
  'st=$(state)',
  'case "$st" in',
  '  unpacked) mkdir -p "$W/old" && setstate out && st=out ;;',
  '  out|in|done) echo "swarm-utils-phase resuming-$st" ;;',
  '  *) echo "swarm-utils-error swap the unpacked tree is not complete (state: ${st:-none}): nothing was moved"; exit 15 ;;',
  'esac',
  'if [ "$st" = out ]; then',
  '  moveall "$V" "$W/old" "$W" || { echo "swarm-utils-error swap could not move the old content aside"; exit 16; }',
  '  setstate in; st=in',
  'fi',
  'if [ "$st" = in ]; then',
  '  N="$W/new/backup/$SU_VOLUME"',
  '  moveall "$N" "$V" "" || { echo "swarm-utils-error swap could not move the restored content in"; exit 16; }',
  '  chmod "$(stat -c %a "$N")" "$V" && chown "$(stat -c %u:%g "$N")" "$V" || true',
  '  setstate done; st=done',
  'fi',
  'mv "$W" "$W.trash" && rm -rf "$W.trash"',
  'echo "swarm-utils-phase swapped"',
  'count_tree "$V"',
].join('\n');

/**
 * After a failed or canceled restore: a swap that had begun is finished (both trees are there, and going
 * forward is the only way that never leaves a mix); a download that never got that far is removed.
 */
export const SETTLE_SH = [
  COMMON,
  'case "$(state)" in',
  '  out|in|done) echo "swarm-utils-phase finishing-swap" ;;',
  '  *) rm -rf "$W" "$W.trash"; echo "swarm-utils-phase discarded"; exit 0 ;;',
  'esac',
  SWAP_SH,
].join('\n');

/** Removes a drill's scratch volume from its node (helper with the node's Docker socket); what used it first. */
export const REMOVE_VOLUME_SH = [
  'set -u',
  'for i in $(seq 1 60); do',
  '  docker volume inspect "$SU_SCRATCH" >/dev/null 2>&1 || { echo "swarm-utils-phase removed $SU_SCRATCH"; exit 0; }',
  '  for c in $(docker ps -aq --filter "volume=$SU_SCRATCH"); do docker rm -f "$c" >/dev/null 2>&1 || true; done',
  '  docker volume rm "$SU_SCRATCH" >/dev/null 2>&1 && { echo "swarm-utils-phase removed $SU_SCRATCH"; exit 0; }',
  '  sleep 1',
  'done',
  'echo "swarm-utils-error other could not remove volume $SU_SCRATCH: $(docker volume rm "$SU_SCRATCH" 2>&1)"',
  'exit 1',
].join('\n');

/**
 * Migration: which of the volumes in $SU_VOLUMES (space separated) exist on this node and hold something
 * (helper with the node's Docker socket, looking through a throwaway container of $SU_IMAGE). Prints one
 * `swarm-utils-volume <name> absent|empty|not-empty` line each; creates nothing.
 */
export const CHECK_VOLUMES_SH = [
  'set -u',
  'for v in $SU_VOLUMES; do',
  '  if ! docker volume inspect "$v" >/dev/null 2>&1; then echo "swarm-utils-volume $v absent"; continue; fi',
  '  n=$(docker run --rm --network none --entrypoint sh -v "$v:/v:ro" "$SU_IMAGE" -c "ls -A /v | head -n 1") || { echo "swarm-utils-error other could not look into volume $v"; exit 1; }',
  '  if [ -z "$n" ]; then echo "swarm-utils-volume $v empty"; else echo "swarm-utils-volume $v not-empty"; fi',
  'done',
].join('\n');

export interface ScriptLine {
  kind: string;
  message: string;
}

/** the first `swarm-utils-error` line of a helper's output */
export function errorLine(output: string): ScriptLine | null {
  const m = /^swarm-utils-error (\S+) ?(.*)$/m.exec(output);
  return m ? { kind: m[1]!, message: m[2]!.trim() } : null;
}
