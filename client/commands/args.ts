// Reading and checking command arguments. Everything here runs before any connection is attempted, and
// every failure is a usage error (exit code 2) naming the argument or the spec field.
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { describeZodError } from '../../common/errors';
import { absolutePathSchema, checkpointIdSchema, nameSchema } from '../../common/names';
import { clusterSpecSchema, type ClusterSpec } from '../../common/spec';
import { EXIT, VccrError } from '../errors';
import type { CommandArgs, OptionValues } from './command';

export function usageError(message: string): VccrError {
  return new VccrError(`${message}\nrun \`vccr --help\` for usage`, 'InvalidInput', EXIT.usage);
}

/** The i-th positional argument, or a usage error naming what is missing. */
export function positional(args: CommandArgs, command: string, i: number, what: string): string {
  const v = args.positionals[i];
  if (v === undefined) throw usageError(`${command}: missing ${what}`);
  return v;
}

/** Refuses positional arguments beyond the `count` a command takes. */
export function noMorePositionals(args: CommandArgs, command: string, count: number): void {
  const extra = args.positionals.slice(count);
  if (extra.length) throw usageError(`${command}: unexpected argument${extra.length > 1 ? 's' : ''} ${extra.map((a) => `"${a}"`).join(' ')}`);
}

/** The one positional argument of a `<cluster> [options]` command: the cluster's name, validated. */
export function onlyCluster(args: CommandArgs, command: string): string {
  const cluster = clusterName(positional(args, command, 0, 'cluster'));
  noMorePositionals(args, command, 1);
  return cluster;
}

/** `{ checkpointId }` from an optional option naming a checkpoint (validated), or nothing. */
export function checkpointOption(values: OptionValues, name: string): { checkpointId?: string } {
  const id = stringValue(values, name);
  return id === undefined ? {} : { checkpointId: checkpointId(id) };
}

function check<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new VccrError(describeZodError(r.error, what), 'InvalidInput', EXIT.usage);
  return r.data;
}

export const clusterName = (value: string): string => check(nameSchema, value, 'cluster name');
export const hostName = (value: string): string => check(nameSchema, value, 'host name');
export const checkpointId = (value: string): string => check(checkpointIdSchema, value, 'checkpoint id');
export const storePath = (value: string): string => check(absolutePathSchema, value, '--store');

export function stringValue(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function flag(values: OptionValues, name: string): boolean {
  return values[name] === true;
}

export function stringList(values: OptionValues, name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** `--host a=b` pairs: VMs of host a come back on host b. */
export function hostMap(pairs: string[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (const pair of pairs) {
    const m = /^([^=]+)=([^=]+)$/.exec(pair);
    if (!m?.[1] || !m[2] || !nameSchema.safeParse(m[1]).success || !nameSchema.safeParse(m[2]).success) {
      throw usageError(`--host ${pair}: expected <from-host>=<to-host> with host names of a-z, 0-9 and "-"`);
    }
    map[m[1]] = m[2];
  }
  return map;
}

/** A spec file, read and fully validated (defaults filled in). */
export function readSpecFile(path: string): ClusterSpec {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw usageError(`cannot read spec ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new VccrError(`spec ${path} is not valid JSON: ${(err as Error).message}`, 'InvalidInput', EXIT.usage);
  }
  return check(clusterSpecSchema, json, 'cluster spec');
}
