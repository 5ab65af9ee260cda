import type { FastifyInstance } from 'fastify';
import { MalusError } from '../errors/index.js';

// Bodies are read as bytes first: the Content-Digest a request signature covers is over the exact
// bytes received, and only then are they parsed as JSON. Keys that could pollute prototypes are refused.

declare module 'fastify' {
  interface FastifyRequest {
    rawBody?: Buffer;
  }
}

function parseJson(bytes: Buffer): unknown {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'), (key, v: unknown) => {
      if (key === '__proto__' || key === 'constructor' || key === 'prototype') {
        throw new MalusError('malformed-body', `request body may not contain the key "${key}"`);
      }
      return v;
    });
  } catch (error) {
    if (error instanceof MalusError) throw error;
    throw new MalusError('malformed-body', 'request body must be a JSON document (application/json)');
  }
  return value;
}

export function registerJsonBody(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(/^application\/(?:[a-z0-9.+-]+\+)?json$/i, { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    request.rawBody = bytes;
    try {
      done(null, parseJson(bytes));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
  // Anything that is not JSON is refused as such, whatever its media type claims.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, _body, done) => {
    done(new MalusError('malformed-body', 'request body must be a JSON document (application/json)'), undefined);
  });
}
