// vccr up <spec.json>: launch a cluster from its spec.
import { EXIT } from '../errors';
import { describeLaunch } from '../render';
import { noMorePositionals, positional, readSpecFile } from './args';
import { WATCH_OPTIONS, type Command } from './command';

export const up: Command = {
  name: 'up',
  synopsis: '<spec.json>',
  summary: 'launch a cluster from its spec',
  details: 'The spec is validated before anything else happens; a bad field is named and nothing is started.',
  options: WATCH_OPTIONS,
  prepare(args) {
    const spec = readSpecFile(positional(args, 'up', 0, 'spec file'));
    noMorePositionals(args, 'up', 1);
    return async (ctx) => {
      const result = await (await ctx.connect()).up(spec, ctx.watch(args.values));
      if ('workflowId' in result) ctx.print(`started ${result.workflowId}`, result);
      else ctx.print(describeLaunch(result), result);
      return EXIT.ok;
    };
  },
};
