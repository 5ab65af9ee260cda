import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { registerAuthentication } from './auth.js';
import { registerJsonBody } from './body.js';
import type { ServerContext } from './context.js';
import { handleError, sendProblem } from './problem.js';
import { collaborationRoutes } from './routes/collaborations.js';
import { budgetRoutes } from './routes/budget.js';
import { datasetRoutes } from './routes/datasets.js';
import { logRoutes } from './routes/log.js';
import { keyDecisionRoutes } from './routes/key-decisions.js';
import { keyReleaseRoutes } from './routes/key-release.js';
import { metaRoutes } from './routes/meta.js';
import { relayRoutes } from './routes/relay.js';
import { workerRoutes } from './routes/workers.js';
import { requireWorker } from './confidential.js';
import { zodValidatorCompiler } from './validation.js';
import { MalusError } from '../errors/index.js';

export const API_VERSION = '0.1.0';
/** Agreements are the largest bodies today; 1 MiB leaves room while refusing abuse. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

export interface BuildAppOptions {
  /** Serve the log's entry bundles publicly (off by default: entries name collaborations and parties). */
  readonly publicEntries?: boolean;
  readonly context: ServerContext;
  /** A pino logger configuration (fastify's `logger` option); defaults to silent. */
  readonly logger?: FastifyServerOptions['logger'];
  /** An existing pino logger, used instead of `logger`. */
  readonly loggerInstance?: FastifyBaseLogger;
  readonly bodyLimit?: number;
  readonly requestTimeoutMs?: number;
}

export type BaseAppOptions = Omit<BuildAppOptions, 'context' | 'publicEntries'> & { readonly title: string; readonly description: string };

/**
 * The parts every Malus HTTP service shares: zod validation and serialization, problem documents,
 * JSON bodies, graceful closing and OpenAPI. Routes and authentication are added by the caller.
 */
export async function baseApp(options: BaseAppOptions) {
  const app = Fastify({
    ...(options.loggerInstance === undefined ? { logger: options.logger ?? false } : { loggerInstance: options.loggerInstance }),
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    connectionTimeout: options.requestTimeoutMs ?? 30_000,
    return503OnClosing: true,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(zodValidatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) => sendProblem(reply, new MalusError('not-found', 'no such route'), request));
  registerJsonBody(app);

  // Once close() has begun, answers tell the client to drop the connection. Otherwise a keep-alive
  // connection whose request was in flight stays open after its answer, and close() waits out the
  // keep-alive timeout before it resolves.
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: options.title,
        version: API_VERSION,
        description: options.description,
      },
      components: {
        securitySchemes: {
          httpMessageSignature: { type: 'apiKey', in: 'header', name: 'Signature', description: 'RFC 9421; see docs/api.md' },
        },
      },
    },
    transform: jsonSchemaTransform,
  });

  return app;
}

/** Builds the HTTP application without listening: tests drive it with inject(). */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const app = await baseApp({
    ...options,
    title: 'Malus API',
    description:
      'Every non-public request carries an RFC 9421 HTTP Message Signature by the party Ed25519 key ' +
      '(keyid = base64url public key) over @method, @target-uri and content-digest, with created and nonce. ' +
      'Errors are RFC 9457 problem documents. See docs/api.md.',
  });
  registerAuthentication(app, options.context);
  await app.register(metaRoutes(API_VERSION));
  await app.register(collaborationRoutes(options.context));
  await app.register(budgetRoutes(options.context));
  await app.register(relayRoutes(options.context));
  await app.register(logRoutes(options.context, { publicEntries: options.publicEntries ?? false }));
  if (options.context.dataDir !== undefined) await app.register(datasetRoutes(options.context));
  const confidential = options.context.confidential;
  if (confidential !== undefined) {
    await app.register(workerRoutes(options.context));
    await app.register(keyDecisionRoutes(options.context));
    await app.register(
      keyReleaseRoutes({
        keyRelease: confidential.keyRelease,
        attester: confidential.attester,
        ...(confidential.simRoot === undefined ? {} : { simRoot: confidential.simRoot }),
        authorizeWorker: async (caller) => {
          await requireWorker(options.context, caller);
        },
      }),
    );
  }
  return app;
}
