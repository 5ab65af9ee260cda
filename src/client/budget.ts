import { budgetView, type BudgetView } from '../api/index.js';
import { request, type MalusClient } from './client.js';

/** A collaboration's privacy budget in the current period (members only; 409 conflict without an active agreement that sets one). */
export function getBudget(client: MalusClient, collaborationId: string): Promise<BudgetView> {
  return request(client, { method: 'GET', path: `/v1/collaborations/${encodeURIComponent(collaborationId)}/budget`, response: budgetView });
}
