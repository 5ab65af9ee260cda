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

/**
 * `application/json` or `application/<x>+json`, with or without parameters. Fastify tests the whole
 * header, parameters included, so the pattern must allow `; charset=utf-8` after the media type.
 */
const JSON_MEDIA_TYPE = /^application\/(?:[a-z0-9.+-]+\+)?json\s*(?:;|$)/i;
const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)/i;

/** JSON is UTF-8 (RFC 8259): a charset parameter, when present, must say so. */
function assertUtf8(contentType: string | undefined): void {
  const charset = CHARSET.exec(contentType ?? '')?.[1];
  if (charset !== undefined && charset.toLowerCase() !== 'utf-8') {
    throw new MalusError('malformed-body', 'request body must be UTF-8 JSON (charset=utf-8 or no charset)');
  }
}

export function registerJsonBody(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(JSON_MEDIA_TYPE, { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    request.rawBody = bytes;
    try {
      assertUtf8(request.headers['content-type']);
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
