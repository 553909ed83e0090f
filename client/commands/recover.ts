// vccr recover <cluster> [--host-dead HOST ...]: an operator's go-ahead to the watch of a protected cluster.
import { EXIT } from '../errors';
import { hostName, onlyCluster, stringList } from './args';
import type { Command } from './command';

export const recover: Command = {
  name: 'recover',
  synopsis: '<cluster> [--host-dead HOST ...]',
  summary: 'tell the watch to recover now (and that a host is dead)',
  details:
    'The watch checks at once and recovers if something is wrong; its limit of recoveries per hour starts afresh.\n' +
    '--host-dead confirms the host is dead (its VMs cannot be running), so its VMs may move to a spare host.',
  options: {
    'host-dead': { type: 'string', multiple: true, value: 'HOST', text: 'a host that is dead: its VMs may be moved to a spare host (repeatable)' },
  },
  prepare(args) {
    const cluster = onlyCluster(args, 'recover');
    const deadHosts = stringList(args.values, 'host-dead').map(hostName);
    return async (ctx) => {
      const vccr = await ctx.connect();
      const state = await vccr.protection.recover(cluster, deadHosts);
      const confirmed = state.confirmedDead.length ? `; hosts confirmed dead: ${state.confirmedDead.join(', ')}` : '';
      ctx.print(
        `the watch of ${cluster} will check and recover now${confirmed}\nwatch: ${state.phase}: ${state.reason}\n(follow it with \`vccr protect ${cluster}\` or \`vccr status ${cluster}\`)`,
        state,
      );
      return EXIT.ok;
    };
  },
};
