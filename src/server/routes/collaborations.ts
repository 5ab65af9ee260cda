import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { callerOf } from '../auth.js';
import { addSignature, getAgreement, listCollaborations, proposeAgreement, showCollaboration } from '../collaborations.js';
import type { ServerContext } from '../context.js';
import {
  agreementQuery,
  agreementView,
  authenticatedErrors,
  collaborationIdParams,
  collaborationList,
  collaborationView,
  problemSchema,
  proposeBody,
  signatureBody,
} from '../../api/index.js';

const security = [{ httpMessageSignature: [] }];

export function collaborationRoutes(ctx: ServerContext): FastifyPluginAsyncZod {
  return (app) => {
    app.post('/v1/collaborations', {
      schema: {
        summary: 'Propose a collaboration (or an amendment) with the proposer signature',
        tags: ['collaborations'],
        security,
        body: proposeBody,
        response: { 201: collaborationView, 403: problemSchema, 409: problemSchema, 422: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => {
        const result = await proposeAgreement(ctx, callerOf(request), request.body);
        return reply.code(201).send(result);
      },
    });

    app.get('/v1/collaborations', {
      schema: {
        summary: 'List the collaborations the caller is a party to',
        tags: ['collaborations'],
        security,
        response: { 200: collaborationList, ...authenticatedErrors },
      },
      handler: async (request) => ({ collaborations: await listCollaborations(ctx, callerOf(request)) }),
    });

    app.get('/v1/collaborations/:id', {
      schema: {
        summary: 'Show a collaboration: its versions, their states and who has signed',
        tags: ['collaborations'],
        security,
        params: collaborationIdParams,
        response: { 200: collaborationView, ...authenticatedErrors },
      },
      handler: async (request) => showCollaboration(ctx, callerOf(request), request.params.id),
    });

    app.post('/v1/collaborations/:id/signatures', {
      schema: {
        summary: "Add the caller's signature to a version of the agreement",
        tags: ['collaborations'],
        security,
        params: collaborationIdParams,
        body: signatureBody,
        response: { 200: collaborationView, 201: collaborationView, 403: problemSchema, 422: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => {
        const { created, collaboration } = await addSignature(ctx, callerOf(request), request.params.id, request.body);
        return reply.code(created ? 201 : 200).send(collaboration);
      },
    });

    app.get('/v1/collaborations/:id/agreement', {
      schema: {
        summary: 'Fetch an agreement version (the latest by default) with its signatures',
        tags: ['collaborations'],
        security,
        params: collaborationIdParams,
        querystring: agreementQuery,
        response: { 200: agreementView, ...authenticatedErrors },
      },
      handler: async (request) => getAgreement(ctx, callerOf(request), request.params.id, { version: request.query.version }),
    });
    return Promise.resolve();
  };
}
