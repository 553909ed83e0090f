// Where and how to reach Temporal: flags first, then environment, then defaults (a local dev server).
// The same settings serve workers, the CLI and the library, so pointing VCCR at another Temporal — the
// docker-compose one, or a remote one over TLS — is a matter of address, namespace and certificates.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { OptionDocs } from './help';
import { DEFAULT_CONTROLLER_TASK_QUEUE } from '../common/ids';

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
    controllerTaskQueue: pick(flags.taskQueue, TEMPORAL_ENV.taskQueue) ?? DEFAULT_CONTROLLER_TASK_QUEUE,
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

/** The Temporal connection options of every program (workers and the CLI), with their help lines. */
export const TEMPORAL_OPTION_DOCS = {
  address: { type: 'string', value: 'HOST:PORT', text: `Temporal frontend (env ${TEMPORAL_ENV.address}, default 127.0.0.1:7233)` },
  namespace: { type: 'string', value: 'NS', text: `Temporal namespace (env ${TEMPORAL_ENV.namespace}, default "default")` },
  'task-queue': { type: 'string', value: 'Q', text: `controller task queue (env ${TEMPORAL_ENV.taskQueue}, default vccr-controller)` },
  tls: { type: 'boolean', text: 'connect over TLS with the system CAs (implied by the options below)' },
  'tls-ca': { type: 'string', value: 'FILE', text: `CA certificate of the server (env ${TEMPORAL_ENV.tlsCa})` },
  'tls-cert': { type: 'string', value: 'FILE', text: `client certificate, for mutual TLS (env ${TEMPORAL_ENV.tlsCert})` },
  'tls-key': { type: 'string', value: 'FILE', text: `client key, with --tls-cert (env ${TEMPORAL_ENV.tlsKey})` },
  'tls-server-name': { type: 'string', value: 'NAME', text: `server name to verify (env ${TEMPORAL_ENV.tlsServerName})` },
} as const satisfies OptionDocs;

/** What to tell someone whose program could not reach Temporal. */
export function howToPointAtTemporal(program: string): string {
  return (
    `point ${program} at your Temporal server with --address HOST:PORT (or ${TEMPORAL_ENV.address}), ` +
    `--namespace NS (or ${TEMPORAL_ENV.namespace}), and --tls-ca/--tls-cert/--tls-key for TLS`
  );
}

/** The Temporal flags among parsed command-line values (anything else is ignored). */
export function temporalFlags(values: Readonly<Record<string, unknown>>): TemporalFlags {
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    address: str(values.address),
    namespace: str(values.namespace),
    taskQueue: str(values['task-queue']),
    tls: values.tls === true ? true : undefined,
    tlsCa: str(values['tls-ca']),
    tlsCert: str(values['tls-cert']),
    tlsKey: str(values['tls-key']),
    tlsServerName: str(values['tls-server-name']),
  };
}
