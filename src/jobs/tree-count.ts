/**
 * One definition of "the size of a volume's tree", shared by every helper that copies, unpacks or
 * checks a volume (staging, drills, restores): the counts recorded at backup time and the counts
 * checked later must be computed the same way, or a good archive would look wrong.
 *
 *   files: entries that are not directories (regular files, symbolic links, other special files)
 *   bytes: the sum of the apparent sizes of the regular files
 *
 * The shell function runs in the node helpers (busybox or GNU userland: find, stat, awk, wc).
 */

/** `count_tree <dir>` prints one line `swarm-utils-count files=<n> bytes=<n>`; exit status non-zero when <dir> is unreadable */
export const COUNT_TREE_SH = [
  'count_tree() {',
  '  [ -d "$1" ] || { echo "count_tree: $1 is not a directory" >&2; return 1; }',
  '  _f=$(cd "$1" && find . ! -type d | wc -l) || return 1',
  "  _b=$(cd \"$1\" && find . -type f -exec stat -c %s {} + | awk '{ s += $1 } END { printf \"%.0f\", s }') || return 1",
  '  echo "swarm-utils-count files=$((_f + 0)) bytes=${_b:-0}"',
  '}',
].join('\n');

export interface TreeCount {
  files: number;
  bytes: number;
}

const LINE = /^swarm-utils-count files=(\d+) bytes=(\d+)\s*$/m;

/** the counts a helper printed with `count_tree`, or null when its output holds none */
export function parseTreeCount(output: string): TreeCount | null {
  const m = LINE.exec(output);
  return m ? { files: Number(m[1]), bytes: Number(m[2]) } : null;
}
