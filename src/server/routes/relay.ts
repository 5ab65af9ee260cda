import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  RUN_MESSAGE_BODY_LIMIT,
  authenticatedErrors,
  collaborationIdParams,
  finishRunBody,
  problemSchema,
  runList,
  runMessageBody,
  runMessageReceipt,
  runMessagesQuery,
  runMessagesView,
  runParams,
  runView,
  startRunBody,
} from '../../api/index.js';
import { callerOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { finishRun, getRun, listRuns, postRunMessage, runMessages, startRun } from '../relay.js';

// The relay of PSI and secure-aggregation runs (docs/relay.md), for the members of a collaboration;
// signed like every other route.

const security = [{ httpMessageSignature: [] }];

export function relayRoutes(ctx: ServerContext): FastifyPluginAsyncZod {
  return (app) => {
    app.post('/v1/collaborations/:id/runs', {
      schema: {
        summary: 'Start a run of a PSI or secure aggregation the active agreement allows, as one of its parties',
        tags: ['relay'],
        security,
        params: collaborationIdParams,
        body: startRunBody,
        response: { 201: runView, 403: problemSchema, 409: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => reply.code(201).send(await startRun(ctx, callerOf(request), request.params.id, request.body)),
    });

    app.get('/v1/collaborations/:id/runs', {
      schema: {
        summary: "A collaboration's runs, newest first",
        tags: ['relay'],
        security,
        params: collaborationIdParams,
        response: { 200: runList, ...authenticatedErrors },
      },
      handler: async (request) => ({ runs: await listRuns(ctx, callerOf(request), request.params.id) }),
    });

    app.get('/v1/collaborations/:id/runs/:run', {
      schema: {
        summary: 'One run: its parties, parameters, state and what the server relayed',
        tags: ['relay'],
        security,
        params: runParams,
        response: { 200: runView, ...authenticatedErrors },
      },
      handler: async (request) => getRun(ctx, callerOf(request), request.params.id, request.params.run),
    });

    app.post('/v1/collaborations/:id/runs/:run/messages', {
      // A message's bytes travel base64url in the JSON body: this route alone takes bodies this large.
      bodyLimit: RUN_MESSAGE_BODY_LIMIT,
      schema: {
        summary: 'Relay an opaque message of the run to another of its parties, or to all (*)',
        tags: ['relay'],
        security,
        params: runParams,
        body: runMessageBody,
        response: { 200: runMessageReceipt, 201: runMessageReceipt, 403: problemSchema, 409: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => {
        const receipt = await postRunMessage(ctx, callerOf(request), request.params.id, request.params.run, request.body);
        return reply.code(receipt.added ? 201 : 200).send(receipt);
      },
    });

    app.get('/v1/collaborations/:id/runs/:run/messages', {
      schema: {
        summary: 'The messages of the run for the caller after a step, in order',
        tags: ['relay'],
        security,
        params: runParams,
        querystring: runMessagesQuery,
        response: { 200: runMessagesView, 403: problemSchema, ...authenticatedErrors },
      },
      handler: async (request) => runMessages(ctx, callerOf(request), request.params.id, request.params.run, request.query),
    });

    app.post('/v1/collaborations/:id/runs/:run/finish', {
      schema: {
        summary: 'End the run with its outcome and a summary of sizes and parameters, logged as run.finished',
        tags: ['relay'],
        security,
        params: runParams,
        body: finishRunBody,
        response: { 200: runView, 403: problemSchema, 409: problemSchema, ...authenticatedErrors },
      },
      handler: async (request) => finishRun(ctx, callerOf(request), request.params.id, request.params.run, request.body),
    });
    return Promise.resolve();
  };
}
