// vccr doctor [<spec.json>]: preflight of every host the spec names (or --host), through its own worker.
import { fail, type DoctorReport } from '../../common/doctor';
import { EXIT, VccrError } from '../errors';
import { describeDoctor } from '../render';
import { hostName, noMorePositionals, readSpecFile, storePath, stringList, stringValue } from './args';
import type { Command } from './command';

export const doctor: Command = {
  name: 'doctor',
  synopsis: '[<spec.json>] [--host ID ...] [--store DIR]',
  summary: 'check that every host can checkpoint and restart the cluster',
  details:
    'Each host checks, through its own worker: QEMU and its version, TCG/KVM, userfaultfd write-protect (live\n' +
    'checkpoints), the store (mounted, writable, room for the cluster\'s RAM, the same store as everyone else),\n' +
    'the VMs\' images, tap devices and network namespaces, and its clock against the controller\'s. The client\n' +
    'checks Temporal: reachable, namespace, search attributes, a controller worker polling. Every problem comes\n' +
    'with its fix. Exits 0 only if the spec can be checkpointed and restarted as written.',
  options: {
    host: { type: 'string', multiple: true, value: 'ID', text: 'also check this host (repeatable; without a spec, the hosts to check)' },
    store: { type: 'string', value: 'DIR', text: 'the store to check when no spec is given (default: env VCCR_STORE)' },
  },
  prepare(args) {
    noMorePositionals(args, 'doctor', 1);
    const file = args.positionals[0];
    const spec = file === undefined ? undefined : readSpecFile(file);
    const hosts = stringList(args.values, 'host').map(hostName);
    const store = stringValue(args.values, 'store') ?? (spec ? undefined : process.env.VCCR_STORE);
    const options = { ...(spec ? { spec } : {}), hosts, ...(store === undefined ? {} : { store: storePath(store) }) };
    return async (ctx) => {
      let report: DoctorReport;
      try {
        report = await (await ctx.connect()).doctor(options);
      } catch (err) {
        if (!(err instanceof VccrError) || err.exitCode !== EXIT.unreachable) throw err;
        const [what = '', how = ''] = err.message.split('\n');
        report = { participants: [{ participant: 'temporal', kind: 'temporal', checks: [fail('reachable', what, how.trim())] }], ok: false };
        ctx.print(describeDoctor(report), report);
        return EXIT.unreachable;
      }
      ctx.print(describeDoctor(report), report);
      return report.ok ? EXIT.ok : EXIT.failed;
    };
  },
};
