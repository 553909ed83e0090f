// End-of-run cleanup (scripts/test.sh calls it on exit): ends whatever the tests recorded with the janitor
// and did not clean up themselves, and fails the run if there was anything — a test run leaves nothing behind.
import { sweep } from './janitor';

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: sweep <janitor-dir>');
  const leftovers = await sweep(dir);
  if (leftovers.length) {
    process.stderr.write(`LEAK: the tests left ${leftovers.length} things behind (now removed):\n  ${leftovers.join('\n  ')}\n`);
    process.exit(1);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`sweep failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
