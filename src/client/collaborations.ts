import { z } from 'zod';
import { agreementView, collaborationList, collaborationView, healthView, type AgreementView, type CollaborationView, type Health } from '../api/index.js';
import type { Agreement, AgreementSignature } from '../agreement/index.js';
import { request, type MalusClient } from './client.js';

const idPath = (id: string): string => `/v1/collaborations/${encodeURIComponent(id)}`;

export function proposeCollaboration(
  client: MalusClient,
  parameters: { agreement: Agreement; signature: AgreementSignature },
): Promise<CollaborationView> {
  return request(client, { method: 'POST', path: '/v1/collaborations', body: parameters, response: collaborationView });
}

export function signCollaboration(client: MalusClient, id: string, signature: AgreementSignature): Promise<CollaborationView> {
  return request(client, { method: 'POST', path: `${idPath(id)}/signatures`, body: signature, response: collaborationView });
}

export function getCollaboration(client: MalusClient, id: string): Promise<CollaborationView> {
  return request(client, { method: 'GET', path: idPath(id), response: collaborationView });
}

export async function listCollaborations(client: MalusClient): Promise<CollaborationView[]> {
  const list = await request(client, { method: 'GET', path: '/v1/collaborations', response: collaborationList });
  return list.collaborations;
}

export function getAgreement(client: MalusClient, id: string, options: { version?: number } = {}): Promise<AgreementView> {
  const query = options.version === undefined ? '' : `?version=${options.version}`;
  return request(client, { method: 'GET', path: `${idPath(id)}/agreement${query}`, response: agreementView });
}

export function getHealth(client: MalusClient): Promise<Health> {
  return request(client, { method: 'GET', path: '/healthz', response: healthView, anonymous: true });
}

export function getOpenApi(client: MalusClient): Promise<Record<string, unknown>> {
  return request(client, { method: 'GET', path: '/openapi.json', response: z.record(z.string(), z.unknown()), anonymous: true });
}
