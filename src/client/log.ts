import {
  checkpointListView,
  consistencyProofView,
  cosignatureAccepted,
  inclusionProofView,
  logEntriesView,
  logKeyView,
  receiptView,
  type CheckpointListView,
  type ConsistencyProofView,
  type InclusionProofView,
  type LogEntryView,
  type LogKeyView,
} from '../api/index.js';
import type { Receipt } from '../ledger/index.js';
import { request, requestBytes, type MalusClient } from './client.js';

export async function getCheckpoint(client: MalusClient): Promise<string> {
  return new TextDecoder().decode(await requestBytes(client, '/v1/log/checkpoint'));
}

export function getLogKey(client: MalusClient): Promise<LogKeyView> {
  return request(client, { method: 'GET', path: '/v1/log/key', response: logKeyView, anonymous: true });
}

export function listCheckpoints(client: MalusClient): Promise<CheckpointListView> {
  return request(client, { method: 'GET', path: '/v1/log/checkpoints', response: checkpointListView, anonymous: true });
}

export function getTile(client: MalusClient, path: string): Promise<Uint8Array> {
  return requestBytes(client, `/v1/log/${path}`);
}

export function getInclusionProof(client: MalusClient, index: number, size: number): Promise<InclusionProofView> {
  return request(client, {
    method: 'GET',
    path: `/v1/log/proof/inclusion?index=${index}&size=${size}`,
    response: inclusionProofView,
    anonymous: true,
  });
}

export function getConsistencyProof(client: MalusClient, from: number, to: number): Promise<ConsistencyProofView> {
  return request(client, {
    method: 'GET',
    path: `/v1/log/proof/consistency?from=${from}&to=${to}`,
    response: consistencyProofView,
    anonymous: true,
  });
}

export async function getLogEntries(client: MalusClient, collaboration: string): Promise<LogEntryView[]> {
  const view = await request(client, {
    method: 'GET',
    path: `/v1/log/entries?collaboration=${encodeURIComponent(collaboration)}`,
    response: logEntriesView,
  });
  return view.entries;
}

export function getReceipt(client: MalusClient, index: number): Promise<Receipt> {
  return request(client, { method: 'GET', path: `/v1/log/receipt?index=${index}`, response: receiptView });
}

export function postCosignature(client: MalusClient, size: number, cosignature: string) {
  return request(client, { method: 'POST', path: '/v1/log/cosignatures', body: { size, cosignature }, response: cosignatureAccepted });
}
