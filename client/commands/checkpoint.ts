// vccr checkpoint <cluster>: checkpoint the whole cluster, consistent across its VMs.
import { EXIT } from '../errors';
import { describeCheckpoint } from '../render';
import { checkpointOption, flag, onlyCluster } from './args';
import { WATCH_OPTIONS, type Command } from './command';

export const checkpoint: Command = {
  name: 'checkpoint',
  synopsis: '<cluster> [--id ID] [--live]',
  summary: 'checkpoint the whole cluster (consistent across VMs)',
  details:
    'Every VM is paused, saved and resumed together; the checkpoint exists once its manifest is committed. ' +
    'With --live the VMs are paused only to fix the cut (milliseconds) and their RAM is written while they run.',
  options: {
    id: { type: 'string', value: 'ID', text: 'name of the checkpoint (default ck-<date>-<time>-<random>)' },
    live: { type: 'boolean', text: 'live checkpoint: pause only to fix the cut, write RAM while the VMs run' },
    ...WATCH_OPTIONS,
  },
  prepare(args) {
    const cluster = onlyCluster(args, 'checkpoint');
    const options = { ...checkpointOption(args.values, 'id'), ...(flag(args.values, 'live') ? { live: true } : {}) };
    return async (ctx) => {
      const result = await (await ctx.connect()).checkpoint(cluster, { ...ctx.watch(args.values), ...options });
      if ('workflowId' in result) {
        ctx.print(`started ${result.workflowId} (checkpoint ${result.checkpointId})`, result);
        return EXIT.ok;
      }
      ctx.print(describeCheckpoint(result), result);
      return result.resumeFailures.length ? EXIT.failed : EXIT.ok;
    };
  },
};
