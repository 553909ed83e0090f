// vccr restart <cluster>: bring the cluster back from a checkpoint, on the same or other hosts.
import { EXIT } from '../errors';
import { describeRestart } from '../render';
import { checkpointOption, flag, hostMap, onlyCluster, storePath, stringList, stringValue } from './args';
import { WATCH_OPTIONS, type Command } from './command';

export const restart: Command = {
  name: 'restart',
  synopsis: '<cluster> [--checkpoint ID] [--host a=b ...] [--force] [--store DIR]',
  summary: 'bring the cluster back from a checkpoint (default: newest)',
  options: {
    checkpoint: { type: 'string', value: 'ID', text: 'the checkpoint to restart from (default: the newest committed one)' },
    host: { type: 'string', multiple: true, value: 'a=b', text: 'VMs of host a come back on host b (repeatable)' },
    force: { type: 'boolean', text: 'stop VMs of the cluster that still run instead of refusing' },
    store: { type: 'string', value: 'DIR', text: 'the checkpoint store, to restart a cluster whose record was lost' },
    ...WATCH_OPTIONS,
  },
  prepare(args) {
    const cluster = onlyCluster(args, 'restart');
    const store = stringValue(args.values, 'store');
    const options = {
      ...checkpointOption(args.values, 'checkpoint'),
      hostMap: hostMap(stringList(args.values, 'host')),
      ...(flag(args.values, 'force') ? { force: true } : {}),
      ...(store === undefined ? {} : { store: storePath(store) }),
    };
    return async (ctx) => {
      const result = await (await ctx.connect()).restart(cluster, { ...ctx.watch(args.values), ...options });
      if ('workflowId' in result) ctx.print(`started ${result.workflowId}`, result);
      else ctx.print(describeRestart(result), result);
      return EXIT.ok;
    };
  },
};
