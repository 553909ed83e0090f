// Registers VCCR's search attributes on the namespace if they are missing (a fresh docker-compose
// Temporal has none; the dev server gets them as flags), so the Web UI can filter by cluster and phase.
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTE_TYPES } from '../common/search-attributes';
import type { Logger } from '../node/logger';

export async function ensureSearchAttributes(client: Client, namespace: string, log: Logger): Promise<void> {
  const operator = client.connection.operatorService;
  const existing = await operator.listSearchAttributes({ namespace });
  const missing = Object.keys(SEARCH_ATTRIBUTE_TYPES).filter((name) => !(name in (existing.customAttributes ?? {})));
  if (!missing.length) return;
  await operator.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(missing.map((name) => [name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
  });
  log.info({ added: missing }, 'registered search attributes');
}
