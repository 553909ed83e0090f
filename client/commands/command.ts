// What a `vccr` command is: its name and help, its own options, and a `prepare` step that checks every
// argument and reads every input file WITHOUT touching the network — so bad input is refused with exit
// code 2 and the field named even when Temporal is down — and returns what to run once connected.
import type { OptionDocs } from '../../node/help';
import type { VccrClient, WatchOptions } from '../index';

export type { OptionDoc, OptionDocs } from '../../node/help';

export type OptionValues = Record<string, string | boolean | Array<string | boolean> | undefined>;

export interface CommandArgs {
  /** Positional arguments after the command's name. */
  positionals: string[];
  values: OptionValues;
}

export interface CommandContext {
  json: boolean;
  /** Connects to Temporal once (a second call returns the same client); fails with exit code 5. */
  connect(): Promise<VccrClient>;
  /** Human text, or `data` as JSON with --json. */
  print(human: string, data: unknown): void;
  /** Progress on stderr while an operation runs (none with --json or --no-wait). */
  watch(values: OptionValues): WatchOptions;
}

/** What a command does once its input is known to be good. Returns the exit code. */
export type CommandRun = (ctx: CommandContext) => Promise<number>;

export interface Command {
  /** One or two words: `up`, `checkpoints list`. */
  name: string;
  /** Positional arguments and main options, for the usage line: `<cluster> [--id ID]`. */
  synopsis: string;
  /** One line for `vccr --help`. */
  summary: string;
  /** More text for `vccr <command> --help`. */
  details?: string;
  options?: OptionDocs;
  /** Checks arguments and reads input files; never connects. Throws a usage error (exit 2) on bad input. */
  prepare(args: CommandArgs): CommandRun;
}

/** Options of every command that starts an operation and can follow its progress. */
export const WATCH_OPTIONS: OptionDocs = {
  'no-wait': { type: 'boolean', text: 'start the operation, print its workflow id and return' },
};
