// The `vccr` command line. Every command talks to Temporal (address/namespace from flags or env) and
// runs as a workflow, so whatever the CLI starts is also visible — and controllable — in the Web UI.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { nameSchema } from '../common/names';
import { temporalFlagOptions, temporalFlags } from '../common/temporal-config';
import { VccrClient, VccrError, EXIT } from './index';
import { toVccrError } from './errors';
import { formatBytes, formatMs, ProgressPrinter, table } from './render';
import type { CheckpointResult } from '../workflows/checkpoint';
import type { RestartResult } from '../workflows/restart';
import { PROTECT_USAGE, describeProtection, protectOptions, runProtect, runRecover } from './protect-cli';

const USAGE = `vccr — checkpoint and restart whole QEMU VM clusters with Temporal

usage:
  vccr up <spec.json>                         launch a cluster from its spec
${PROTECT_USAGE.trimEnd()}
  vccr checkpoint <cluster> [--id ID]         checkpoint the whole cluster (consistent across VMs)
  vccr restart <cluster> [--checkpoint ID] [--host a=b ...] [--force] [--store DIR]
                                              bring the cluster back from a checkpoint (default: newest)
  vccr checkpoints list <cluster>             committed (and failed) checkpoints
  vccr checkpoints show <cluster> <ID>        a checkpoint's manifest and timings
  vccr checkpoints verify <cluster> <ID>      re-read every file and check its sha256
  vccr checkpoints delete <cluster> <ID>      delete it (disk layers other checkpoints need are kept)
  vccr status [<cluster>]                     clusters, or one cluster's VMs as their hosts see them
  vccr down <cluster> [--kill]                stop every VM of the cluster

options:
  --address HOST:PORT   Temporal frontend (env TEMPORAL_ADDRESS, default 127.0.0.1:7233)
  --namespace NS        Temporal namespace (env TEMPORAL_NAMESPACE, default "default")
  --task-queue Q        controller task queue (env VCCR_CONTROLLER_TASK_QUEUE, default vccr-controller)
  --tls, --tls-ca F, --tls-cert F, --tls-key F, --tls-server-name N
                        TLS to a remote Temporal (env TEMPORAL_TLS_CA, _CERT, _KEY, _SERVER_NAME)
  --no-wait             start the operation and print its workflow id
  --json                machine-readable output
exit codes: 0 ok, 1 operation failed, 2 bad input, 3 cluster busy, 4 unknown cluster/checkpoint, 5 Temporal unreachable
`;

const options = {
  ...temporalFlagOptions,
  json: { type: 'boolean' },
  'no-wait': { type: 'boolean' },
  id: { type: 'string' },
  checkpoint: { type: 'string' },
  host: { type: 'string', multiple: true },
  force: { type: 'boolean' },
  store: { type: 'string' },
  kill: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  ...protectOptions,
} as const;

function usageError(message: string): VccrError {
  return new VccrError(`${message}\nrun \`vccr --help\` for usage`, 'InvalidInput', EXIT.usage);
}

function parseHostMap(pairs: string[] | undefined): Record<string, string> {
  const map: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const m = /^([^=]+)=([^=]+)$/.exec(pair);
    if (!m?.[1] || !m[2] || !nameSchema.safeParse(m[1]).success || !nameSchema.safeParse(m[2]).success) {
      throw usageError(`--host ${pair}: expected <from-host>=<to-host> with host names of a-z, 0-9 and "-"`);
    }
    map[m[1]] = m[2];
  }
  return map;
}

function readSpec(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw usageError(`cannot read spec ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new VccrError(`spec ${path} is not valid JSON: ${(err as Error).message}`, 'InvalidInput', EXIT.usage);
  }
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw usageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return command || values.help ? EXIT.ok : EXIT.usage;
  }
  const json = values.json === true;
  const print = (human: string, data: unknown) => process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : `${human}\n`);
  const watch = {
    ...(values['no-wait'] ? { noWait: true } : {}),
    ...(!json && !values['no-wait'] ? { onProgress: new ProgressPrinter(process.stderr).update } : {}),
  };
  const arg = (i: number, what: string): string => {
    const v = rest[i];
    if (v === undefined) throw usageError(`${command}: missing ${what}`);
    return v;
  };
  const known = ['up', 'checkpoint', 'restart', 'checkpoints', 'status', 'down', 'protect', 'recover'];
  if (!known.includes(command)) throw usageError(`unknown command "${command}"`);

  const vccr = await VccrClient.connect(temporalFlags(values));
  try {
    switch (command) {
      case 'up': {
        const result = await vccr.up(readSpec(arg(0, 'spec file')), watch);
        if ('workflowId' in result) return print(`started ${result.workflowId}`, result), EXIT.ok;
        print(
          `cluster ${result.cluster} is up\n` + table([['VM', 'HOST', 'PID', 'STATUS', 'CONSOLE'], ...result.vms.map((v) => [v.name, v.host, String(v.pid), v.status, v.consoleLog])]),
          result,
        );
        return EXIT.ok;
      }
      case 'checkpoint': {
        const result = await vccr.checkpoint(arg(0, 'cluster'), { ...watch, ...(values.id ? { checkpointId: values.id } : {}) });
        if ('workflowId' in result) return print(`started ${result.workflowId} (checkpoint ${result.checkpointId})`, result), EXIT.ok;
        print(describeCheckpoint(result), result);
        return result.resumeFailures.length ? EXIT.failed : EXIT.ok;
      }
      case 'restart': {
        const result = await vccr.restart(arg(0, 'cluster'), {
          ...watch,
          ...(values.checkpoint ? { checkpointId: values.checkpoint } : {}),
          hostMap: parseHostMap(values.host),
          ...(values.force ? { force: true } : {}),
          ...(values.store ? { store: values.store } : {}),
        });
        if ('workflowId' in result) return print(`started ${result.workflowId}`, result), EXIT.ok;
        print(describeRestart(result), result);
        return EXIT.ok;
      }
      case 'protect': {
        const result = await runProtect(vccr, arg(0, 'cluster'), values);
        print(describeProtection(result), result);
        return EXIT.ok;
      }
      case 'recover': {
        const cluster = arg(0, 'cluster');
        const message = await runRecover(vccr, cluster, values['host-dead']);
        print(message, await vccr.protection.status(cluster));
        return EXIT.ok;
      }
      case 'down': {
        const result = await vccr.down(arg(0, 'cluster'), { ...watch, ...(values.kill ? { kill: true } : {}) });
        if ('workflowId' in result) return print(`started ${result.workflowId}`, result), EXIT.ok;
        print(`cluster ${result.cluster} is down (${result.stopped.length} VMs stopped)`, result);
        return EXIT.ok;
      }
      case 'status': {
        if (!rest[0]) {
          const clusters = await vccr.clusters();
          const rows = [['CLUSTER', 'STATUS', 'VMS', 'LAST CHECKPOINT', 'BUSY WITH', 'WATCH']];
          const states = [];
          for (const name of clusters) {
            const s = await vccr.clusterState(name);
            if (!s) continue;
            const watch = await vccr.protection.watchState(name);
            states.push({ ...s, ...(watch ? { watch } : {}) });
            rows.push([name, s.status, String(Object.keys(s.placement).length), s.lastCheckpointId ?? '-', s.lock ? `${s.lock.operation} (${s.lock.workflowId})` : '-', watch ? watch.phase : 'not protected']);
          }
          print(clusters.length ? table(rows) : 'no clusters', states);
          return EXIT.ok;
        }
        const result = await vccr.status(arg(0, 'cluster'));
        const s = result.state;
        const protection = await vccr.protection.status(result.cluster);
        print(
          `cluster ${result.cluster}: ${s.status}${s.lock ? `, busy with ${s.lock.operation} (${s.lock.workflowId})` : ''}, last checkpoint ${s.lastCheckpointId ?? '-'}\n` +
            `${describeProtection(protection)}\n` +
            table([
              ['VM', 'HOST', 'PID', 'PROCESS', 'QMP STATUS'],
              ...result.vms.map((v) => [v.name, v.host, v.pid ? String(v.pid) : '-', v.alive ? 'alive' : v.known ? 'dead' : 'unknown', v.qmpStatus ?? v.error ?? '-']),
            ]),
          { ...result, protection },
        );
        return result.vms.every((v) => v.alive && v.qmpStatus === 'running') ? EXIT.ok : EXIT.failed;
      }
      case 'checkpoints': {
        const sub = arg(0, 'subcommand (list, show, verify, delete)');
        const cluster = arg(1, 'cluster');
        const store = values.store;
        if (sub === 'list') {
          const r = await vccr.checkpoints.list(cluster, store);
          const rows = [['CHECKPOINT', 'COMMITTED', 'VMS', 'SIZE', 'HOSTS'], ...r.committed.map((c) => [c.checkpointId, c.committedAt, String(c.vms), formatBytes(c.totalBytes), c.hosts.join(',')])];
          const failed = r.failed.length ? `\n\nfailed:\n${table([['CHECKPOINT', 'FAILED AT', 'PHASE', 'REASON'], ...r.failed.map((f) => [f.checkpointId, f.failedAt, f.phase, f.reason])])}` : '';
          print((r.committed.length ? table(rows) : 'no committed checkpoints') + failed, r);
          return EXIT.ok;
        }
        const id = arg(2, 'checkpoint id');
        if (sub === 'show') {
          const r = await vccr.checkpoints.show(cluster, id, store);
          const m = r.manifest;
          const resumed = new Map((r.resume?.vms ?? []).map((v) => [v.name, v.resumedAt]));
          const t0 = Math.min(...m.vms.map((v) => v.timings.pausedAt));
          print(
            `checkpoint ${m.checkpointId} of ${m.cluster}, committed ${m.committedAt}, ${formatBytes(m.totalBytes)}\n` +
              table([
                ['VM', 'HOST', 'STATE FILE', 'SIZE', 'SHA256', 'PAUSED', 'SAVED', 'RESUMED', 'DISKS'],
                ...m.vms.map((v) => [
                  v.name,
                  v.host,
                  v.state.file,
                  formatBytes(v.state.size),
                  v.state.sha256.slice(0, 12),
                  `+${v.timings.pausedAt - t0} ms`,
                  `+${v.timings.savedAt - t0} ms`,
                  resumed.has(v.name) ? `+${(resumed.get(v.name) ?? 0) - t0} ms` : '-',
                  v.disks.map((d) => d.id).join(',') || '-',
                ]),
              ]),
            r,
          );
          return EXIT.ok;
        }
        if (sub === 'verify') {
          const r = await vccr.checkpoints.verify(cluster, id, store);
          print(r.ok ? `checkpoint ${id}: OK (${r.files.length} state files match their checksums)` : `checkpoint ${id}: DAMAGED\n  ${r.problems.join('\n  ')}`, r);
          return r.ok ? EXIT.ok : EXIT.failed;
        }
        if (sub === 'delete') {
          const r = await vccr.checkpoints.delete(cluster, id, store);
          print(`deleted checkpoint ${id} (${r.removedFiles.length} files, ${r.removedLayers.length} unreferenced disk layers)`, r);
          return EXIT.ok;
        }
        throw usageError(`checkpoints: unknown subcommand "${sub}"`);
      }
    }
    return EXIT.usage;
  } finally {
    await vccr.close();
  }
}

export function describeCheckpoint(r: CheckpointResult): string {
  const phases = Object.entries(r.phases)
    .filter(([, t]) => t.end !== undefined)
    .map(([name, t]) => [name, formatMs((t.end ?? t.start) - t.start)]);
  return (
    `checkpoint ${r.checkpointId} of ${r.cluster} committed: ${r.vms.length} VMs, ${formatBytes(r.totalBytes)}\n` +
    `  downtime ${formatMs(r.downtimeMs)} (first pause → last resume), pause skew ${formatMs(r.pauseSkewMs)}, resume skew ${formatMs(r.resumeSkewMs)}\n` +
    table([['PHASE', 'TIME'], ...phases]).replace(/^/gm, '  ') +
    (r.resumeFailures.length ? `\n  NOT RESUMED: ${r.resumeFailures.join('; ')}` : '')
  );
}

export function describeRestart(r: RestartResult): string {
  const phases = Object.entries(r.phases)
    .filter(([, t]) => t.end !== undefined)
    .map(([name, t]) => [name, formatMs((t.end ?? t.start) - t.start)]);
  return (
    `cluster ${r.cluster} restarted from ${r.checkpointId}: ${r.vms.length} VMs, restore ${formatMs(r.restoreMs)}, resume skew ${formatMs(r.resumeSkewMs)}\n` +
    table([['PHASE', 'TIME'], ...phases]).replace(/^/gm, '  ') +
    (r.unreachableHosts.length ? `\n  unreachable old hosts (remapped away): ${r.unreachableHosts.join(', ')}` : '')
  );
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      const e = toVccrError(err);
      process.stderr.write(`vccr: ${e.message}\n`);
      process.exit(e.exitCode);
    },
  );
}

export { main };
