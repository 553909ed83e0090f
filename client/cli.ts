// The `vccr` command line: finds the command (client/commands/), checks its arguments and input files
// and the Temporal settings — all before any connection — then connects and runs it. Every command runs
// as a workflow, so whatever the CLI starts is also visible, and controllable, in the Web UI.
import { parseArgs } from 'node:util';
import { formatOptions, parseArgsOptions, type OptionDocs } from '../node/help';
import { TEMPORAL_OPTION_DOCS, temporalFlags } from '../node/temporal-config';
import { vccrVersion } from '../node/version';
import { VccrClient, type ConnectTarget } from './index';
import { EXIT, toVccrError } from './errors';
import { ProgressPrinter } from './render';
import { COMMANDS, type Command } from './commands';
import { usageError } from './commands/args';
import type { CommandContext, OptionValues } from './commands/command';

const GLOBAL_OPTIONS: OptionDocs = {
  ...TEMPORAL_OPTION_DOCS,
  json: { type: 'boolean', text: 'machine-readable output' },
  help: { type: 'boolean', short: 'h', text: 'show help (of a command: `vccr <command> --help`)' },
  version: { type: 'boolean', text: 'print the version of vccr' },
};

const EXIT_CODES = 'exit codes: 0 ok, 1 operation failed, 2 bad input, 3 cluster busy, 4 unknown cluster/checkpoint, 5 Temporal unreachable\n';

function overview(): string {
  // Summaries in one column; a usage line too long for it gets its summary on the next line.
  const width = 42;
  const lines = COMMANDS.map((c) => {
    const usage = `vccr ${c.name} ${c.synopsis}`;
    return usage.length <= width ? `  ${usage.padEnd(width)}  ${c.summary}` : `  ${usage}\n  ${''.padEnd(width)}  ${c.summary}`;
  });
  return (
    'vccr — checkpoint and restart whole QEMU VM clusters with Temporal\n\nusage:\n' +
    `${lines.join('\n')}\n\noptions of every command:\n${formatOptions(GLOBAL_OPTIONS)}\n\n` +
    'run `vccr <command> --help` for the options of a command\n' +
    EXIT_CODES
  );
}

function commandHelp(c: Command): string {
  const own = c.options && Object.keys(c.options).length ? `\noptions:\n${formatOptions(c.options)}\n` : '';
  return (
    `usage: vccr ${c.name} ${c.synopsis}\n\n${c.summary}${c.details ? `\n${c.details}` : ''}\n${own}` +
    `\noptions of every command (Temporal connection, --json): see \`vccr --help\`\n` +
    EXIT_CODES
  );
}

/** The command named by the first one or two positionals, and the positionals after its name. */
function findCommand(positionals: string[]): { command: Command | undefined; rest: string[] } {
  const two = positionals.slice(0, 2).join(' ');
  const byTwo = COMMANDS.find((c) => c.name === two);
  if (byTwo) return { command: byTwo, rest: positionals.slice(2) };
  return { command: COMMANDS.find((c) => c.name === positionals[0]), rest: positionals.slice(1) };
}

/** Commands whose name starts with `word` (the subcommands of `vccr checkpoints`). */
function group(word: string | undefined): Command[] {
  return COMMANDS.filter((c) => c.name.startsWith(`${word} `));
}

function unknownCommand(positionals: string[]): Error {
  const [word, sub] = positionals;
  const subs = group(word);
  if (!subs.length) return usageError(`unknown command "${word}"`);
  const names = subs.map((c) => c.name.split(' ')[1]).join(', ');
  return usageError(sub === undefined ? `${word}: missing subcommand (${names})` : `${word}: unknown subcommand "${sub}" (${names})`);
}

export async function main(argv: string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const allOptions: OptionDocs = Object.assign({}, GLOBAL_OPTIONS, ...COMMANDS.map((c) => c.options ?? {}));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: parseArgsOptions(allOptions), allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    throw usageError((err as Error).message);
  }
  const values = parsed.values as OptionValues;
  const positionals = parsed.positionals[0] === 'help' ? parsed.positionals.slice(1) : parsed.positionals;
  const wantsHelp = values.help === true || parsed.positionals[0] === 'help';
  if (values.version === true) {
    out.write(`vccr ${vccrVersion()}\n`);
    return EXIT.ok;
  }
  if (!positionals.length) {
    out.write(overview());
    return wantsHelp ? EXIT.ok : EXIT.usage;
  }
  const { command, rest } = findCommand(positionals);
  if (!command) {
    const subs = group(positionals[0]);
    if (wantsHelp && subs.length && positionals.length === 1) {
      out.write(subs.map(commandHelp).join('\n'));
      return EXIT.ok;
    }
    throw unknownCommand(positionals);
  }
  if (wantsHelp) {
    out.write(commandHelp(command));
    return EXIT.ok;
  }
  for (const token of parsed.tokens ?? []) {
    if (token.kind === 'option' && !(token.name in GLOBAL_OPTIONS) && !(token.name in (command.options ?? {}))) {
      throw usageError(`${command.name}: --${token.name} is not an option of this command`);
    }
  }
  // Everything is checked before the first connection attempt: Temporal settings, then the command's input.
  const target = VccrClient.target(temporalFlags(values));
  const run = command.prepare({ positionals: rest, values });
  const ctx = new CliContext(target, values.json === true, out);
  try {
    return await run(ctx);
  } finally {
    await ctx.close();
  }
}

class CliContext implements CommandContext {
  private client: Promise<VccrClient> | undefined;

  constructor(
    private readonly target: ConnectTarget,
    readonly json: boolean,
    private readonly out: NodeJS.WriteStream,
  ) {}

  connect(): Promise<VccrClient> {
    this.client ??= VccrClient.open(this.target);
    return this.client;
  }

  print(human: string, data: unknown): void {
    this.out.write(this.json ? `${JSON.stringify(data, null, 2)}\n` : `${human}\n`);
  }

  watch(values: OptionValues) {
    if (values['no-wait'] === true) return { noWait: true };
    return this.json ? {} : { onProgress: new ProgressPrinter(process.stderr).update };
  }

  async close(): Promise<void> {
    const client = await this.client?.catch(() => undefined);
    await client?.close();
  }
}

/** Runs `vccr` with these arguments and exits with its code; errors become one line on stderr. */
export function run(argv: string[]): void {
  main(argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      const e = toVccrError(err);
      process.stderr.write(`vccr: ${e.message}\n`);
      process.exit(e.exitCode);
    },
  );
}

if (require.main === module) run(process.argv.slice(2));
