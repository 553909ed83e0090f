// Turning a worker's startup failure into one clear line instead of a stack trace (the Temporal flags
// themselves live in common/temporal-config.ts, shared with the CLI).
export { temporalFlagOptions, temporalFlags } from '../common/temporal-config';

export function exitWithUsage(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}
