/**
 * `swarm-utils`: the command-line client of the HTTP API (docs/cli.md). Each verb is one request
 * (or a submission followed with --wait); exit codes say how it ended (exit.ts).
 */
import { Command, CommanderError, Option } from 'commander';
import { buildInfo } from '../version.js';
import { canAsk, confirmByName } from './confirm.js';
import { type Ctx, type GlobalOpts, contextOf } from './context.js';
import { parseJobId } from './duration.js';
import { CliError, EXIT, type ExitCode, usage } from './exit.js';
import { ApiError, query } from './client.js';
import type { Io } from './io.js';
import { type WaitOpts, cancelJob, jobLogs, listJobs, showJob, submit, waitFor } from './jobs.js';
import { configCheck, listBackups, listServices, migrateFromOffen, schedules, serviceStatus, versions } from './views.js';

const HELP_WIDTH = 100;

type Action = (ctx: Ctx, ...args: any[]) => Promise<ExitCode>;

interface Built {
  program: Command;
  code: () => ExitCode;
}

const JOB_TYPES = ['clean', 'backup', 'update', 'restore', 'drill', 'migrate'];
const JOB_STATES = ['queued', 'running', 'succeeded', 'failed', 'canceled'];

function waitOptions(cmd: Command): Command {
  return cmd
    .option('-w, --wait', 'follow the job to its end; the exit code says how it ended')
    .option('--timeout <duration>', 'with --wait: stop waiting after this long (90s, 10m, 1h); exit 6, the job goes on');
}

/** exactly one of the given options, or a usage error */
function oneOf(opts: object, names: string[], what: string): void {
  const values = opts as Record<string, unknown>;
  const given = names.filter((n) => values[n] !== undefined && values[n] !== false);
  if (given.length !== 1) throw usage(`${what}: give exactly one of ${names.map(flagOf).join(', ')}`);
}
const flagOf = (name: string) => (name.startsWith('<') ? name : `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);

async function confirmRestore(ctx: Ctx, service: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!canAsk(ctx.io)) throw usage('restore replaces the volume\'s content: confirm with --yes (no terminal to ask on)');
  const ok = await confirmByName(ctx.io, `Restore replaces the content of ${service}'s volume (the service is stopped meanwhile).`, service);
  if (!ok) throw usage('restore not confirmed: nothing was started');
}

function buildProgram(io: Io): Built {
  let exit: ExitCode = EXIT.ok;
  const program = new Command('swarm-utils');
  program
    .description('Command-line client of swarm-utils: backups, restores, drills, updates, cleans and jobs through its HTTP API')
    .version(buildInfo().version, '-V, --version', 'the client version (swarm-utils version also asks the server)')
    .option('--url <url>', 'the API address (else SWARM_UTILS_URL, else http://127.0.0.1:8080)')
    .option('--token-file <path>', 'read the token from this file (else SWARM_UTILS_TOKEN, else the admin token file inside the container)')
    .option('--token <token>', 'the token itself (warned about: it stays in the shell history)')
    .option('--json', "print the API's JSON unchanged (progress of --wait goes to stderr)")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s), getOutHelpWidth: () => HELP_WIDTH, getErrHelpWidth: () => HELP_WIDTH })
    .configureHelp({ helpWidth: HELP_WIDTH, showGlobalOptions: true })
    .showHelpAfterError('(swarm-utils --help lists the verbs)')
    .addHelpText(
      'after',
      '\nExit codes: 0 succeeded, 1 failed, 2 usage or configuration error, 3 refused (4xx), 4 unreachable,\n5 canceled, 6 timed out (the job failed TIMEOUT, or --timeout passed first).',
    );

  /** runs an action with the context of the global options; its exit code becomes the command's */
  const act =
    (fn: Action) =>
    async (...args: unknown[]) => {
      const cmd = args.at(-1) as Command;
      const ctx = contextOf(io, cmd.optsWithGlobals<GlobalOpts>());
      exit = await fn(ctx, ...args.slice(0, -1));
    };

  waitOptions(
    program
      .command('backup')
      .description('back up a service\'s volumes to S3 (or every service with swarm-utils.backup.enable=true)')
      .argument('[service]', 'the service (name or id)')
      .option('--all', 'every enabled service this token may back up'),
  ).action(
    act(async (ctx, service: string | undefined, o: WaitOpts & { all?: boolean }) => {
      oneOf({ '<service>': service, all: o.all }, ['<service>', 'all'], 'backup');
      return submit(ctx, { type: 'backup', ...(o.all ? { all: true } : { service }) }, o);
    }),
  );

  waitOptions(
    program
      .command('restore')
      .description("replace a volume's content with an archive (a safety backup of the current content first)")
      .argument('<service>', 'the service whose volume is restored')
      .option('--from <key>', 'the archive: its object key, as `swarm-utils backups ls` lists it')
      .option('--latest', 'the newest archive of the volume on the node')
      .option('--node <node>', 'the node whose volume and archives (default: the node of the service\'s task)')
      .option('--volume <volume>', 'the volume, when the service backs up more than one')
      .option('--no-safety-backup', 'skip the backup of the current content before it is replaced')
      .option('-y, --yes', 'do not ask to type the service name (needed without a terminal)'),
  ).action(
    act(async (ctx, service: string, o: WaitOpts & { from?: string; latest?: boolean; node?: string; volume?: string; safetyBackup: boolean; yes?: boolean }) => {
      oneOf(o, ['from', 'latest'], 'restore');
      await confirmRestore(ctx, service, o.yes);
      const body = { type: 'restore', service, key: o.from, node: o.node, volume: o.volume, ...(o.safetyBackup ? {} : { safetyBackup: false }) };
      return submit(ctx, body, o);
    }),
  );

  waitOptions(
    program
      .command('drill')
      .description('prove an archive restores: unpack it into a scratch volume and count it, with no effect on the service')
      .argument('[service]', 'the service whose archives are drilled')
      .option('--all', 'every enabled service')
      .option('--from <key>', 'this archive')
      .option('--latest', 'the newest archive of each selected volume (the default)')
      .option('--volume <volume>', 'only this volume'),
  ).action(
    act(async (ctx, service: string | undefined, o: WaitOpts & { all?: boolean; from?: string; latest?: boolean; volume?: string }) => {
      oneOf({ '<service>': service, all: o.all }, ['<service>', 'all'], 'drill');
      if (o.from !== undefined && o.latest) throw usage('drill: give --from <key> or --latest, not both');
      return submit(ctx, { type: 'drill', ...(o.all ? { all: true } : { service }), key: o.from, volume: o.volume }, o);
    }),
  );

  waitOptions(
    program
      .command('migrate')
      .description('move a service and its volumes to another node (admin token)')
      .argument('<service>', 'the service to move')
      .requiredOption('--to <node>', 'the node to move it to (hostname or id)'),
  ).action(act(async (ctx, service: string, o: WaitOpts & { to: string }) => submit(ctx, { type: 'migrate', service, to: o.to }, o)));

  waitOptions(
    program
      .command('clean')
      .description("prune containers, images and build cache on a node, or run a service's clean command")
      .option('--node <node>', 'prune this node (hostname or id)')
      .option('--service <service>', 'run the swarm-utils.clean.exec command in this service\'s containers')
      .option('--all', 'every node and every enabled service'),
  ).action(
    act(async (ctx, o: WaitOpts & { node?: string; service?: string; all?: boolean }) => {
      oneOf(o, ['node', 'service', 'all'], 'clean');
      return submit(ctx, { type: 'clean', ...(o.all ? { all: true } : o.node !== undefined ? { node: o.node } : { service: o.service }) }, o);
    }),
  );

  waitOptions(
    program
      .command('update')
      .description('roll out a new image, or resolve the current tag again (an unchanged digest restarts the tasks)')
      .argument('<service>', 'the service to update')
      .option('--image <ref>', 'the image to roll out, e.g. registry.example.com/app:1.2'),
  ).action(act(async (ctx, service: string, o: WaitOpts & { image?: string }) => submit(ctx, { type: 'update', service, image: o.image }, o)));

  const backups = program.command('backups').description('the archives in the bucket');
  backups
    .command('ls')
    .description('list archives, newest first')
    .option('--service <service>', "only the volumes this service backs up")
    .option('--volume <volume>', 'only this volume')
    .option('--node <node>', 'only archives made on this node')
    .option('--limit <n>', 'at most this many')
    .option('--before <key>', 'the page after this key (the "more:" line of the previous page)')
    .action(act(async (ctx, o: { service?: string; volume?: string; node?: string; limit?: string; before?: string }) => listBackups(ctx, query(o))));

  const jobs = program.command('jobs').description('jobs: list, show, follow, cancel');
  jobs
    .command('ls')
    .description('list jobs, newest first')
    .addOption(new Option('--type <type>', 'only this type').choices(JOB_TYPES))
    .addOption(new Option('--state <state>', 'only this state').choices(JOB_STATES))
    .option('--service <service>', 'only jobs of this service')
    .option('--node <node>', 'only jobs of this node')
    .option('--limit <n>', 'at most this many (default 50, at most 200)')
    .option('--before <id>', 'jobs older than this id (the "more:" line of the previous page)')
    .action(act(async (ctx, o: Record<string, string | undefined>) => listJobs(ctx, query(o))));
  jobs
    .command('show')
    .description('a job with its steps')
    .argument('<id>', 'the job id')
    .action(act(async (ctx, id: string) => showJob(ctx, parseJobId(id))));
  jobs
    .command('wait')
    .description('follow a job (started by anyone) to its end; the exit code says how it ended')
    .argument('<id>', 'the job id')
    .option('--timeout <duration>', 'stop waiting after this long (90s, 10m, 1h); exit 6, the job goes on')
    .action(act(async (ctx, id: string, o: WaitOpts) => waitFor(ctx, parseJobId(id), o)));
  waitOptions(
    jobs
      .command('cancel')
      .description('cancel a job: a queued one ends at once, a running one at its next step, after giving back what it holds')
      .argument('<id>', 'the job id'),
  ).action(act(async (ctx, id: string, o: WaitOpts) => cancelJob(ctx, parseJobId(id), o)));
  jobs
    .command('logs')
    .description("each step's output in full")
    .argument('<id>', 'the job id')
    .action(act(async (ctx, id: string) => jobLogs(ctx, parseJobId(id))));

  program
    .command('status')
    .description('a service: replicas, tasks, labels, recent jobs (without a service: every service this token may see)')
    .argument('[service]', 'the service')
    .option('--logs <n>', 'also its last n log lines')
    .action(
      act(async (ctx, service: string | undefined, o: { logs?: string }) => {
        if (service === undefined) return listServices(ctx);
        if (o.logs !== undefined && !/^\d{1,4}$/.test(o.logs)) throw usage(`--logs takes a number of lines (got ${JSON.stringify(o.logs)})`);
        return serviceStatus(ctx, service, o.logs === undefined ? undefined : Number(o.logs));
      }),
    );

  program
    .command('schedules')
    .description("the common cron run and every service's own schedule (swarm-utils.backup.cron, drill.cron) with the next run (admin token)")
    .action(act(async (ctx) => schedules(ctx)));

  program
    .command('migrate-from-offen')
    .description('the offen/docker-volume-backup labels on the services and the swarm-utils label to use instead; exit 1 while one is left to migrate (admin token)')
    .action(act(async (ctx) => migrateFromOffen(ctx)));

  const config = program.command('config').description("the service's configuration");
  config
    .command('check')
    .description('validate the SWARM_UTILS_* environment the way start-up does, without starting (exit 2 on a problem)')
    .action(async (_o: unknown, cmd: Command) => {
      exit = configCheck(io, cmd.optsWithGlobals<GlobalOpts>().json === true);
    });

  program
    .command('version')
    .description("the client's version and the server's, if it answers")
    .action(act(async (ctx) => versions(ctx)));

  return { program, code: () => exit };
}

/** prints what ended the command; the token never appears (it is in no message) */
function report(io: Io, err: unknown, json: boolean): ExitCode {
  if (err instanceof ApiError) {
    if (json) io.stdout.write(err.response.text.endsWith('\n') ? err.response.text : `${err.response.text}\n`);
    const details = (err.response.json as { error?: { details?: unknown } } | null)?.error?.details;
    io.stderr.write(`swarm-utils: ${err.message}\n`);
    if (Array.isArray(details)) {
      for (const d of details as { field?: string; message?: string }[]) if (d.field || d.message) io.stderr.write(`  ${d.field ?? ''}: ${d.message ?? ''}\n`);
    }
    return err.code;
  }
  if (err instanceof CliError) {
    io.stderr.write(`swarm-utils: ${err.message}\n`);
    return err.code;
  }
  io.stderr.write(`swarm-utils: unexpected error: ${err instanceof Error ? err.message : String(err)}\n`);
  return EXIT.failed;
}

/** what `--help` prints for swarm-utils and for every verb, for docs/cli.md and its check */
export async function helpTexts(io: Io): Promise<Map<string, string>> {
  const paths: string[][] = [];
  const walk = (cmd: Command, path: string[]) => {
    paths.push(path);
    for (const sub of cmd.commands) walk(sub, [...path, sub.name()]);
  };
  walk(buildProgram(io).program, []);
  const out = new Map<string, string>();
  for (const path of paths) {
    let text = '';
    await run([...path, '--help'], { ...io, stdout: { write: (s) => void (text += s) } });
    out.set(['swarm-utils', ...path].join(' '), text);
  }
  return out;
}

export async function run(argv: string[], io: Io): Promise<ExitCode> {
  const { program, code } = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code();
  } catch (err) {
    // help and --version end with 0; every other complaint of the parser is a usage error
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const json = argv.includes('--json');
    return report(io, err, json);
  }
}
