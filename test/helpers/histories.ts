// The recorded workflow histories in test/histories/ (written by `npm run histories:record`).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { REPO_ROOT } from '../../harness/testbed';

export const HISTORIES_DIR = join(REPO_ROOT, 'test', 'histories');

export interface RecordedHistoryFile {
  /** Path under test/histories/ without .json. */
  name: string;
  workflowType: string;
  /** As `temporal workflow show --output json` wrote it. */
  history: { events: Array<Record<string, unknown>> };
}

/**
 * Every history under test/histories/, sub-folders included: the top level is what
 * `npm run histories:record` writes; a sub-folder keeps the histories of an earlier release for as long
 * as executions it started may still be running (ARCHITECTURE.md, "Changing a workflow safely").
 */
export function loadHistories(): RecordedHistoryFile[] {
  return (readdirSync(HISTORIES_DIR, { recursive: true, encoding: 'utf8' }) as string[])
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const history = JSON.parse(readFileSync(join(HISTORIES_DIR, file), 'utf8')) as RecordedHistoryFile['history'];
      const started = history.events[0]?.['workflowExecutionStartedEventAttributes'] as { workflowType?: { name?: string } } | undefined;
      const workflowType = started?.workflowType?.name;
      if (!workflowType) throw new Error(`${file}: the first event is not a workflow start`);
      return { name: file.replace(/\.json$/, ''), workflowType, history };
    });
}

/** The workflow bundle the controller worker runs (built by `npm run build`). */
export const WORKFLOW_BUNDLE = join(REPO_ROOT, 'dist', 'workflow-bundle.js');

/** Replays report their failures as results: keep the SDK's own warnings about them off the test output. */
export function installQuietRuntime(): void {
  Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } });
}
