/** Exit codes of the command-line client (docs/cli.md, "Exit codes"). */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  refused: 3,
  unreachable: 4,
  canceled: 5,
  timedOut: 6,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A problem that ends the command with `code` after `message` was printed (never a token). */
export class CliError extends Error {
  constructor(
    readonly code: ExitCode,
    message: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const usage = (message: string): CliError => new CliError(EXIT.usage, message);

/** how a finished (or still running) job ends the command */
export function exitOfJob(job: { state: string; error: { code: string } | null }): ExitCode {
  switch (job.state) {
    case 'succeeded':
      return EXIT.ok;
    case 'canceled':
      return EXIT.canceled;
    case 'failed':
      return job.error?.code === 'TIMEOUT' ? EXIT.timedOut : EXIT.failed;
    default:
      // still queued or running when the wait ended
      return EXIT.timedOut;
  }
}
