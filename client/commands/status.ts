// vccr status [<cluster>]: every cluster record, or one cluster's VMs as their hosts see them.
import type { ClusterState } from '../../common/messages';
import { EXIT } from '../errors';
import { describeClusters, describeStatus } from '../render';
import { clusterName, noMorePositionals } from './args';
import type { Command } from './command';

export const status: Command = {
  name: 'status',
  synopsis: '[<cluster>]',
  summary: 'clusters, or one cluster\'s VMs as their hosts see them',
  details: 'With a cluster, exits with 1 unless every VM is alive and running.',
  prepare(args) {
    noMorePositionals(args, 'status', 1);
    const named = args.positionals[0];
    if (named === undefined) {
      return async (ctx) => {
        const vccr = await ctx.connect();
        const states: Array<ClusterState & { watch?: string }> = [];
        for (const name of await vccr.clusters()) {
          const s = await vccr.clusterState(name);
          const watch = s ? await vccr.protection.watchState(name) : undefined;
          if (s) states.push({ ...s, ...(watch ? { watch: watch.phase } : {}) });
        }
        ctx.print(describeClusters(states), states);
        return EXIT.ok;
      };
    }
    const cluster = clusterName(named);
    return async (ctx) => {
      const vccr = await ctx.connect();
      const result = await vccr.status(cluster);
      const protection = await vccr.protection.status(cluster);
      ctx.print(describeStatus(result, protection), { ...result, protection });
      return result.vms.every((v) => v.alive && v.qmpStatus === 'running') ? EXIT.ok : EXIT.failed;
    };
  },
};
