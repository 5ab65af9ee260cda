import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  authenticatedErrors,
  challengeView,
  claimView,
  collaborationIdParams,
  finishJobBody,
  jobParams,
  jobReceiptView,
  jobView,
  problemSchema,
  submitJobBody,
  workerJobParams,
  workerRegistrationBody,
  workerView,
} from '../../api/index.js';
import { issueChallenge } from '../../keyrelease/index.js';
import { z } from 'zod';
import { callerOf } from '../auth.js';
import { cancelJob, claimJob, finishJob, getJob, heartbeat, jobReceipt, listJobs, registerWorker, submitJob } from '../confidential.js';
import type { ServerContext } from '../context.js';

// Enclave workers and the job queue: analysts and providers submit jobs; attested workers
// register, claim the jobs whose agreement pins their measurement, and return signed results.

const security = [{ httpMessageSignature: [] }];
/** A query's sealed result may be some 22 MiB of base64url: the finish route alone takes bodies this large. */
const FINISH_BODY_LIMIT = 64 * 1024 * 1024;

export function workerRoutes(ctx: ServerContext): FastifyPluginAsyncZod {
  return (app) => {
    app.post('/v1/workers/challenges', {
      schema: {
        summary: 'A single-use challenge (60 s) for a worker to bind into its registration evidence',
        tags: ['workers'],
        security,
        response: { 201: challengeView, ...authenticatedErrors },
      },
      handler: async (_request, reply) => {
        const challenge = await issueChallenge(ctx.store, 'registration', ctx.now());
        return reply.code(201).send({ challenge: challenge.challenge, expiresAt: challenge.expiresAt.toISOString() });
      },
    });

    app.post('/v1/workers', {
      schema: {
        summary: 'Register the calling enclave worker with evidence binding its encryption key and a challenge',
        tags: ['workers'],
        security,
        body: workerRegistrationBody,
        response: { 201: workerView, 422: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => reply.code(201).send(await registerWorker(ctx, callerOf(request), request.body)),
    });

    app.post('/v1/workers/me/claim', {
      schema: {
        summary: 'Take the oldest queued job whose agreement pins this worker, with the agreement evidence',
        tags: ['workers'],
        security,
        response: { 200: claimView, 403: problemSchema, ...authenticatedErrors },
      },
      handler: async (request) => claimJob(ctx, callerOf(request)),
    });

    app.post('/v1/workers/me/jobs/:job/finish', {
      bodyLimit: FINISH_BODY_LIMIT,
      schema: {
        summary: "End the worker's job with its enclave-signed result, or with an error",
        tags: ['workers'],
        security,
        params: workerJobParams,
        body: finishJobBody,
        response: { 200: jobView, 403: problemSchema, 409: problemSchema, 422: problemSchema, ...authenticatedErrors },
      },
      handler: async (request) => finishJob(ctx, callerOf(request), request.params.job, request.body),
    });

    app.post('/v1/workers/me/jobs/:job/heartbeat', {
      schema: {
        summary: 'Say that the worker is still at its running job, which keeps the job from expiring',
        tags: ['workers'],
        security,
        params: workerJobParams,
        response: { 200: z.strictObject({ state: z.literal('running') }), 403: problemSchema, 409: problemSchema, ...authenticatedErrors },
      },
      handler: async (request) => heartbeat(ctx, callerOf(request), request.params.job),
    });

    app.post('/v1/collaborations/:id/jobs', {
      schema: {
        summary: 'Submit a job under the active agreement: a check of datasets and keys, or a governed query',
        tags: ['jobs'],
        security,
        params: collaborationIdParams,
        body: submitJobBody,
        response: { 200: jobView, 201: jobView, 403: problemSchema, 409: problemSchema, 422: problemSchema, ...authenticatedErrors },
      },
      // 201 for a job queued now; 200 for a retry whose idempotency key had already queued it.
      handler: async (request, reply) => {
        const submitted = await submitJob(ctx, callerOf(request), request.params.id, request.body);
        return reply.code(submitted.replayed ? 200 : 201).send(submitted.job);
      },
    });

    app.get('/v1/collaborations/:id/jobs', {
      schema: {
        summary: "A collaboration's jobs, newest first",
        tags: ['jobs'],
        security,
        params: collaborationIdParams,
        response: { 200: z.strictObject({ jobs: z.array(jobView) }), ...authenticatedErrors },
      },
      handler: async (request) => ({ jobs: await listJobs(ctx, callerOf(request), request.params.id) }),
    });

    app.get('/v1/collaborations/:id/jobs/:job', {
      schema: {
        summary: 'One job, with its signed result once it has one',
        tags: ['jobs'],
        security,
        params: jobParams,
        response: { 200: jobView, ...authenticatedErrors },
      },
      handler: async (request) => getJob(ctx, callerOf(request), request.params.id, request.params.job),
    });

    app.delete('/v1/collaborations/:id/jobs/:job', {
      schema: {
        summary: 'Cancel a queued job (its submitter only): it fails with code cancelled and its privacy charge comes back',
        tags: ['jobs'],
        security,
        params: jobParams,
        response: { 200: jobView, 403: problemSchema, 409: problemSchema, ...authenticatedErrors },
      },
      handler: async (request) => cancelJob(ctx, callerOf(request), request.params.id, request.params.job),
    });

    app.get('/v1/collaborations/:id/jobs/:job/receipt', {
      schema: {
        summary: "A succeeded job's receipt: its job.finished entry proven in the log, the signed statement, the enclave's evidence and the agreement",
        tags: ['jobs'],
        security,
        params: jobParams,
        response: { 200: jobReceiptView, 409: problemSchema, ...authenticatedErrors },
      },
      handler: async (request) => jobReceipt(ctx, callerOf(request), request.params.id, request.params.job),
    });
    return Promise.resolve();
  };
}
