// Where and how to reach Temporal: flags first, then environment, then defaults (a local dev server).
// The same settings serve workers, the CLI and the library, so pointing VCCR at another Temporal — the
// docker-compose one, or a remote one over TLS — is a matter of address, namespace and certificates.
import { readFileSync } from 'node:fs';
import type { ParseArgsConfig } from 'node:util';
import { z } from 'zod';

export interface TemporalSettings {
  address: string;
  namespace: string;
  controllerTaskQueue: string;
  tls?: { serverName?: string; caPath?: string; certPath?: string; keyPath?: string };
}

export const TEMPORAL_ENV = {
  address: 'TEMPORAL_ADDRESS',
  namespace: 'TEMPORAL_NAMESPACE',
  taskQueue: 'VCCR_CONTROLLER_TASK_QUEUE',
  tlsCa: 'TEMPORAL_TLS_CA',
  tlsCert: 'TEMPORAL_TLS_CERT',
  tlsKey: 'TEMPORAL_TLS_KEY',
  tlsServerName: 'TEMPORAL_TLS_SERVER_NAME',
} as const;

const addressSchema = z.string().regex(/^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, 'must be host:port');
const namespaceSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/, 'must be a Temporal namespace name');

export interface TemporalFlags {
  address?: string | undefined;
  namespace?: string | undefined;
  taskQueue?: string | undefined;
  tlsCa?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  tlsServerName?: string | undefined;
  tls?: boolean | undefined;
}

export function temporalSettings(flags: TemporalFlags = {}, env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  const pick = (flag: string | undefined, name: string) => flag ?? env[name] ?? undefined;
  const address = addressSchema.safeParse(pick(flags.address, TEMPORAL_ENV.address) ?? '127.0.0.1:7233');
  if (!address.success) throw new Error(`invalid Temporal address: ${address.error.issues[0]?.message}`);
  const namespace = namespaceSchema.safeParse(pick(flags.namespace, TEMPORAL_ENV.namespace) ?? 'default');
  if (!namespace.success) throw new Error(`invalid Temporal namespace: ${namespace.error.issues[0]?.message}`);
  const caPath = pick(flags.tlsCa, TEMPORAL_ENV.tlsCa);
  const certPath = pick(flags.tlsCert, TEMPORAL_ENV.tlsCert);
  const keyPath = pick(flags.tlsKey, TEMPORAL_ENV.tlsKey);
  const serverName = pick(flags.tlsServerName, TEMPORAL_ENV.tlsServerName);
  if ((certPath === undefined) !== (keyPath === undefined)) throw new Error('TLS client certificate and key must be given together');
  const useTls = flags.tls === true || caPath !== undefined || certPath !== undefined || serverName !== undefined;
  return {
    address: address.data,
    namespace: namespace.data,
    controllerTaskQueue: pick(flags.taskQueue, TEMPORAL_ENV.taskQueue) ?? 'vccr-controller',
    ...(useTls
      ? {
          tls: {
            ...(serverName ? { serverName } : {}),
            ...(caPath ? { caPath } : {}),
            ...(certPath ? { certPath } : {}),
            ...(keyPath ? { keyPath } : {}),
          },
        }
      : {}),
  };
}

/** The `tls` option of Connection.connect / NativeConnection.connect. */
export function tlsOption(settings: TemporalSettings) {
  const t = settings.tls;
  if (!t) return undefined;
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`cannot read TLS ${what} ${path}: ${(err as Error).message}`);
    }
  };
  return {
    ...(t.serverName ? { serverNameOverride: t.serverName } : {}),
    ...(t.caPath ? { serverRootCACertificate: read(t.caPath, 'CA certificate') } : {}),
    ...(t.certPath && t.keyPath ? { clientCertPair: { crt: read(t.certPath, 'certificate'), key: read(t.keyPath, 'key') } } : {}),
  };
}

/** The Temporal connection flags of every command (workers and the CLI), for node:util parseArgs. */
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

