// Search attributes VCCR sets on its workflows so the Web UI can list and filter operations by cluster,
// phase and checkpoint. They must be registered on the server: the dev server gets them as
// `--search-attribute` flags; the controller worker registers any that are missing at start.
import { defineSearchAttributeKey } from '@temporalio/common';

export const SEARCH_ATTRIBUTE_TYPES = {
  VccrCluster: 'Keyword',
  VccrOperation: 'Keyword',
  VccrPhase: 'Keyword',
  VccrCheckpointId: 'Keyword',
} as const;

export const VCCR_CLUSTER = defineSearchAttributeKey('VccrCluster', 'KEYWORD');
export const VCCR_OPERATION = defineSearchAttributeKey('VccrOperation', 'KEYWORD');
export const VCCR_PHASE = defineSearchAttributeKey('VccrPhase', 'KEYWORD');
export const VCCR_CHECKPOINT_ID = defineSearchAttributeKey('VccrCheckpointId', 'KEYWORD');
