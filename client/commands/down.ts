// vccr down <cluster>: stop every VM of the cluster.
import { EXIT } from '../errors';
import { flag, onlyCluster } from './args';
import { WATCH_OPTIONS, type Command } from './command';

export const down: Command = {
  name: 'down',
  synopsis: '<cluster> [--kill]',
  summary: 'stop every VM of the cluster',
  options: {
    kill: { type: 'boolean', text: 'SIGKILL the QEMU processes instead of asking them to quit' },
    ...WATCH_OPTIONS,
  },
  prepare(args) {
    const cluster = onlyCluster(args, 'down');
    const kill = flag(args.values, 'kill');
    return async (ctx) => {
      const result = await (await ctx.connect()).down(cluster, { ...ctx.watch(args.values), ...(kill ? { kill: true } : {}) });
      if ('workflowId' in result) ctx.print(`started ${result.workflowId}`, result);
      else ctx.print(`cluster ${result.cluster} is down (${result.stopped.length} VMs stopped)`, result);
      return EXIT.ok;
    };
  },
};
