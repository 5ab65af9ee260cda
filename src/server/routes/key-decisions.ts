import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { authenticatedErrors, collaborationIdParams, problemSchema } from '../../api/index.js';
import { eventSchema } from '../../ledger/index.js';
import { callerOf } from '../auth.js';
import { recordRemoteDecision } from '../confidential.js';
import type { ServerContext } from '../context.js';

// A party that runs its own key-release service (`malus kms serve`) records its grants and denials
// in the collaboration's log through this route, signed with its party key.

export function keyDecisionRoutes(ctx: ServerContext): FastifyPluginAsyncZod {
  return (app) => {
    app.post('/v1/collaborations/:id/key-decisions', {
      schema: {
        summary: "Record a key-release decision made by the caller's own key-release service",
        tags: ['key release'],
        security: [{ httpMessageSignature: [] }],
        params: collaborationIdParams,
        body: z.strictObject({ event: eventSchema }),
        response: { 201: z.strictObject({ index: z.number().int() }), 403: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => reply.code(201).send({ index: await recordRemoteDecision(ctx, callerOf(request), request.params.id, request.body.event) }),
    });
    return Promise.resolve();
  };
}
