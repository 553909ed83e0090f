// vccr checkpoints list|show|verify|delete: the cluster's checkpoint store. Each subcommand is a command
// of its own (two-word name); `--store` reads a store whose cluster record is gone.
import { EXIT } from '../errors';
import { describeCheckpointList, describeDelete, describeManifest, describeVerify } from '../render';
import { checkpointId, clusterName, noMorePositionals, positional, storePath, stringValue } from './args';
import type { Command, CommandArgs, OptionDocs } from './command';

const STORE_OPTION: OptionDocs = {
  store: { type: 'string', value: 'DIR', text: 'the checkpoint store (needed only when the cluster record is gone)' },
};

/** <cluster> [<ID>] [--store DIR], validated. */
function target(args: CommandArgs, command: string, withId: boolean): { cluster: string; id: string; store: string | undefined } {
  const cluster = clusterName(positional(args, command, 0, 'cluster'));
  const id = withId ? checkpointId(positional(args, command, 1, 'checkpoint id')) : '';
  noMorePositionals(args, command, withId ? 2 : 1);
  const store = stringValue(args.values, 'store');
  return { cluster, id, store: store === undefined ? undefined : storePath(store) };
}

export const checkpointsList: Command = {
  name: 'checkpoints list',
  synopsis: '<cluster>',
  summary: 'committed (and failed) checkpoints',
  options: STORE_OPTION,
  prepare(args) {
    const t = target(args, 'checkpoints list', false);
    return async (ctx) => {
      const r = await (await ctx.connect()).checkpoints.list(t.cluster, t.store);
      ctx.print(describeCheckpointList(r), r);
      return EXIT.ok;
    };
  },
};

export const checkpointsShow: Command = {
  name: 'checkpoints show',
  synopsis: '<cluster> <ID>',
  summary: 'a checkpoint\'s manifest and timings',
  options: STORE_OPTION,
  prepare(args) {
    const t = target(args, 'checkpoints show', true);
    return async (ctx) => {
      const r = await (await ctx.connect()).checkpoints.show(t.cluster, t.id, t.store);
      ctx.print(describeManifest(r.manifest, r.resume), r);
      return EXIT.ok;
    };
  },
};

export const checkpointsVerify: Command = {
  name: 'checkpoints verify',
  synopsis: '<cluster> <ID>',
  summary: 're-read every file and check its sha256',
  details: 'Exits with 1 if any file is missing or damaged.',
  options: STORE_OPTION,
  prepare(args) {
    const t = target(args, 'checkpoints verify', true);
    return async (ctx) => {
      const r = await (await ctx.connect()).checkpoints.verify(t.cluster, t.id, t.store);
      ctx.print(describeVerify(r), r);
      return r.ok ? EXIT.ok : EXIT.failed;
    };
  },
};

export const checkpointsDelete: Command = {
  name: 'checkpoints delete',
  synopsis: '<cluster> <ID>',
  summary: 'delete it (disk layers other checkpoints need are kept)',
  options: STORE_OPTION,
  prepare(args) {
    const t = target(args, 'checkpoints delete', true);
    return async (ctx) => {
      const r = await (await ctx.connect()).checkpoints.delete(t.cluster, t.id, t.store);
      ctx.print(describeDelete(r), r);
      return EXIT.ok;
    };
  },
};
