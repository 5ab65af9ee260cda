import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { authenticatedErrors, budgetView, collaborationIdParams, problemSchema } from '../../api/index.js';
import { callerOf } from '../auth.js';
import { budgetOfCollaboration } from '../budget.js';
import type { ServerContext } from '../context.js';

// A collaboration's privacy budget, for its members (docs/dp.md).

const security = [{ httpMessageSignature: [] }];

export function budgetRoutes(ctx: ServerContext): FastifyPluginAsyncZod {
  return (app) => {
    app.get('/v1/collaborations/:id/budget', {
      schema: {
        summary: 'The privacy budget of the current period: spent and remaining, of the collaboration and of each analyst',
        tags: ['collaborations'],
        security,
        params: collaborationIdParams,
        response: { 200: budgetView, 409: problemSchema, ...authenticatedErrors },
      },
      handler: async (request) => budgetOfCollaboration(ctx, callerOf(request), request.params.id),
    });
    return Promise.resolve();
  };
}
