import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { healthView } from '../../api/index.js';

export function metaRoutes(version: string): FastifyPluginAsyncZod {
  return (app) => {
    app.get('/healthz', {
      config: { public: true },
      schema: { summary: 'Liveness', tags: ['meta'], response: { 200: healthView } },
      handler: () => ({ status: 'ok' as const, version }),
    });

    app.get('/openapi.json', {
      config: { public: true },
      schema: { hide: true },
      handler: () => app.swagger(),
    });
    return Promise.resolve();
  };
}
