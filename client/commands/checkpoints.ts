// vccr checkpoints list|show|verify|delete: the cluster's checkpoint store. Each subcommand is a command
// of its own (two-word name); `--store` reads a store whose cluster record is gone.
import type { VccrClient } from '../index';
import { EXIT } from '../errors';
import { describeCheckpointList, describeDelete, describeManifest, describeVerify } from '../render';
import { checkpointId, clusterName, noMorePositionals, positional, storePath, stringValue } from './args';
import type { Command, CommandArgs, CommandContext, OptionDocs } from './command';

const STORE_OPTION: OptionDocs = {
  store: { type: 'string', value: 'DIR', text: 'the checkpoint store (needed only when the cluster record is gone)' },
};

interface Target {
  cluster: string;
  /** '' for `list`. */
  id: string;
  store: string | undefined;
}

/** <cluster> [<ID>] [--store DIR], validated. */
function target(args: CommandArgs, command: string, withId: boolean): Target {
  const cluster = clusterName(positional(args, command, 0, 'cluster'));
  const id = withId ? checkpointId(positional(args, command, 1, 'checkpoint id')) : '';
  noMorePositionals(args, command, withId ? 2 : 1);
  const store = stringValue(args.values, 'store');
  return { cluster, id, store: store === undefined ? undefined : storePath(store) };
}

/** `checkpoints <sub>`: checks its target, then runs with the connected client; returns the exit code. */
function storeCommand(
  sub: string,
  withId: boolean,
  help: Pick<Command, 'summary' | 'details'>,
  run: (vccr: VccrClient, t: Target, ctx: CommandContext) => Promise<number>,
): Command {
  const name = `checkpoints ${sub}`;
  return {
    name,
    synopsis: withId ? '<cluster> <ID>' : '<cluster>',
    ...help,
    options: STORE_OPTION,
    prepare(args) {
      const t = target(args, name, withId);
      return async (ctx) => run(await ctx.connect(), t, ctx);
    },
  };
}

export const checkpointsList = storeCommand('list', false, { summary: 'committed (and failed) checkpoints' }, async (vccr, t, ctx) => {
  const r = await vccr.checkpoints.list(t.cluster, t.store);
  ctx.print(describeCheckpointList(r), r);
  return EXIT.ok;
});

export const checkpointsShow = storeCommand('show', true, { summary: "a checkpoint's manifest and timings" }, async (vccr, t, ctx) => {
  const r = await vccr.checkpoints.show(t.cluster, t.id, t.store);
  ctx.print(describeManifest(r.manifest, r.resume), r);
  return EXIT.ok;
});

export const checkpointsVerify = storeCommand(
  'verify',
  true,
  { summary: 're-read every file and check its sha256', details: 'Exits with 1 if any file is missing or damaged.' },
  async (vccr, t, ctx) => {
    const r = await vccr.checkpoints.verify(t.cluster, t.id, t.store);
    ctx.print(describeVerify(r), r);
    return r.ok ? EXIT.ok : EXIT.failed;
  },
);

export const checkpointsDelete = storeCommand('delete', true, { summary: 'delete it (disk layers other checkpoints need are kept)' }, async (vccr, t, ctx) => {
  const r = await vccr.checkpoints.delete(t.cluster, t.id, t.store);
  ctx.print(describeDelete(r), r);
  return EXIT.ok;
});
