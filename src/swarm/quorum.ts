/**
 * A Docker error that says this manager is cut off from the swarm's quorum: Raft has no leader it can reach,
 * or a change was proposed and never committed (a leader that lost its followers answers so until it steps down).
 */
export function isNoQuorum(e: unknown): boolean {
  const message = e instanceof Error ? e.message : String(e);
  return /does not have a leader|too few managers are online|no elected cluster leader|lost quorum|rpc error: code = DeadlineExceeded/i.test(message);
}
