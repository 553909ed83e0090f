// Options of our command-line programs (the vccr CLI and the workers), described once: what node:util's
// parseArgs needs and the line each prints in `--help`.
import type { ParseArgsConfig } from 'node:util';

export interface OptionDoc {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** Placeholder of the value in the help (`--id ID`). */
  value?: string;
  text: string;
}

export type OptionDocs = Record<string, OptionDoc>;

/** The parseArgs configuration of some option docs. */
export function parseArgsOptions(docs: OptionDocs): NonNullable<ParseArgsConfig['options']> {
  return Object.fromEntries(
    Object.entries(docs).map(([name, d]) => [name, { type: d.type, ...(d.multiple ? { multiple: true } : {}), ...(d.short ? { short: d.short } : {}) }]),
  );
}

/** Aligned `--name VALUE   text` lines. */
export function formatOptions(docs: OptionDocs): string {
  const rows = Object.entries(docs).map(([name, d]) => [`${d.short ? `-${d.short}, ` : ''}--${name}${d.value ? ` ${d.value}` : ''}`, d.text]);
  const width = Math.max(0, ...rows.map(([left]) => (left ?? '').length));
  return rows.map(([left, text]) => `  ${(left ?? '').padEnd(width)}  ${text}`).join('\n');
}
