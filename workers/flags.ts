// Command-line flags shared by the workers (node:util parseArgs), and turning a startup failure into
// one clear line instead of a stack trace.
import type { ParseArgsConfig } from 'node:util';
import type { TemporalFlags } from '../common/temporal-config';

export const temporalFlagOptions = {
  address: { type: 'string' },
  namespace: { type: 'string' },
  'task-queue': { type: 'string' },
  tls: { type: 'boolean' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-server-name': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

type FlagValues = { [K in keyof typeof temporalFlagOptions]?: (typeof temporalFlagOptions)[K]['type'] extends 'boolean' ? boolean : string };

export function temporalFlags(values: FlagValues): TemporalFlags {
  return {
    address: values.address,
    namespace: values.namespace,
    taskQueue: values['task-queue'],
    tls: values.tls,
    tlsCa: values['tls-ca'],
    tlsCert: values['tls-cert'],
    tlsKey: values['tls-key'],
    tlsServerName: values['tls-server-name'],
  };
}

export function exitWithUsage(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}
