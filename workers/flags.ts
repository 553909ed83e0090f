// Command lines of the worker programs: `--help`, options checked before anything connects, and one
// clear line instead of a stack trace when they are wrong (exit code 2, which the systemd units treat as
// "do not restart": a configuration error does not heal by retrying).
import { parseArgs } from 'node:util';
import { formatOptions, parseArgsOptions, type OptionDocs } from '../node/help';
import { vccrVersion } from '../node/version';

export const EXIT_USAGE = 2;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface WorkerProgram {
  /** The program's name in messages (vccr-host-worker). */
  name: string;
  synopsis: string;
  description: string;
  options: OptionDocs;
}

export type WorkerArgs = Record<string, string | boolean | undefined>;

/** Parses the program's arguments; prints the help and exits 0 for --help. */
export function parseWorkerArgs(program: WorkerProgram, argv: string[] = process.argv.slice(2)): WorkerArgs {
  const options = {
    ...program.options,
    help: { type: 'boolean', short: 'h', text: 'show this help' },
    version: { type: 'boolean', text: 'print the version' },
  } satisfies OptionDocs;
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: parseArgsOptions(options), strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help === true) {
    process.stdout.write(`usage: ${program.name} ${program.synopsis}\n\n${program.description}\n\noptions:\n${formatOptions(options)}\n`);
    process.exit(0);
  }
  if (values.version === true) {
    process.stdout.write(`${program.name} ${vccrVersion()}\n`);
    process.exit(0);
  }
  const out: WorkerArgs = {};
  for (const [k, v] of Object.entries(values)) if (typeof v === 'string' || typeof v === 'boolean') out[k] = v;
  return out;
}

/** Ends a worker that failed to start with one line: exit 2 for bad options, 1 otherwise. */
export function exitWithUsage(program: string): (err: unknown) => never {
  return (err) => {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${program}: ${message}${err instanceof UsageError ? `\nrun \`${program} --help\` for usage` : ''}\n`);
    process.exit(err instanceof UsageError ? EXIT_USAGE : 1);
  };
}
