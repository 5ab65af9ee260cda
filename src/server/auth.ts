import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MalusError } from '../errors/index.js';
import { DEFERRED_BODY, checkContentDigest, verifyRequest } from '../httpsig/index.js';
import { decodeSigningKey, partyIdFor } from '../identity/index.js';
import type { ServerContext } from './context.js';

/** What authentication needs: the clock, the nonce store and the public URL. */
export type AuthContext = Pick<ServerContext, 'now' | 'publicBaseUrl'> & { readonly store: Pick<ServerContext['store'], 'nonces'> };

// Every non-public request carries an RFC 9421 signature by the caller's Ed25519 key over
// @method, @target-uri and content-digest, with `created` and `nonce`. Identities are
// self-certifying: the keyid is the base64url public key and the party id is derived from it,
// so the server needs no key directory. Authorization (is this party in that collaboration?)
// happens in the routes.

export const MAX_SIGNATURE_AGE_SECONDS = 300;
export const MAX_CLOCK_SKEW_SECONDS = 30;

export interface AuthenticatedParty {
  readonly id: string;
  readonly signingKey: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    party?: AuthenticatedParty;
    /** The signed Content-Digest, checked against the body once it has arrived. */
    signedDigest?: string | undefined;
  }
  interface FastifyContextConfig {
    /** Routes that anyone may call without a signature (health, OpenAPI, public log tiles). */
    public?: boolean;
  }
}

function targetUri(ctx: AuthContext, request: FastifyRequest): string {
  const base = ctx.publicBaseUrl ?? `http://${request.headers.host ?? 'localhost'}`;
  return `${base.replace(/\/$/, '')}${request.url}`;
}

/**
 * Verifies the request's signature from its headers alone and remembers its nonce; the signed
 * Content-Digest is kept for checkSignedBody. Run before the body is read, so that a stranger's
 * request is refused before the server buffers its bytes (up to 8 MiB for an upload piece).
 */
export async function authenticate(ctx: AuthContext, request: FastifyRequest): Promise<AuthenticatedParty & { digest: string | undefined }> {
  const now = ctx.now();
  const result = verifyRequest({
    method: request.method,
    url: targetUri(ctx, request),
    headers: request.headers,
    body: DEFERRED_BODY,
    now: Math.floor(now.getTime() / 1000),
    maxAgeSeconds: MAX_SIGNATURE_AGE_SECONDS,
    maxSkewSeconds: MAX_CLOCK_SKEW_SECONDS,
    resolveKey: (keyId) => {
      const decoded = decodeSigningKey(keyId);
      return 'key' in decoded ? decoded.key : undefined;
    },
  });
  if (!result.ok) {
    request.log.info({ reason: result.reason }, 'request signature refused');
    throw new MalusError('unauthenticated', `request signature refused (${result.reason}): ${result.detail}`);
  }
  // Remember the nonce until the signature could no longer be accepted anyway.
  const expiresAt = new Date((result.created + MAX_SIGNATURE_AGE_SECONDS + MAX_CLOCK_SKEW_SECONDS) * 1000);
  const fresh = await ctx.store.nonces.remember(result.keyId, result.nonce, expiresAt, now);
  if (!fresh) throw new MalusError('unauthenticated', 'request signature refused (replayed-nonce): this nonce was already used');
  const decoded = decodeSigningKey(result.keyId);
  if (!('key' in decoded)) throw new MalusError('unauthenticated', 'request signature refused (unknown-key)');
  return { id: partyIdFor(decoded.key), signingKey: result.keyId, digest: result.pendingDigest };
}

/** The body that arrived must be the one the signature's Content-Digest names. */
export function checkSignedBody(request: FastifyRequest, digest: string | undefined): void {
  const problem = checkContentDigest(digest, request.rawBody ?? new Uint8Array());
  if (problem !== undefined) {
    request.log.info({ reason: 'digest-mismatch' }, 'request signature refused');
    throw new MalusError('unauthenticated', `request signature refused (digest-mismatch): ${problem}`);
  }
}

/**
 * Adds the authentication hook to every route not marked `config: { public: true }`. A request that
 * matches no route is answered 404 whether signed or not: the routes are public (GET /openapi.json).
 */
export function registerAuthentication(app: FastifyInstance, ctx: AuthContext): void {
  app.addHook('onRequest', async (request) => {
    if (request.is404 || request.routeOptions.config.public === true) return;
    const { digest, ...party } = await authenticate(ctx, request);
    request.signedDigest = digest;
    request.party = party;
  });
  app.addHook('preValidation', (request, _reply, done) => {
    try {
      if (!request.is404 && request.routeOptions.config.public !== true) checkSignedBody(request, request.signedDigest);
      done();
    } catch (error) {
      done(error as Error);
    }
  });
}

/** The authenticated caller; routes that reach this were authenticated by the hook. */
export function callerOf(request: FastifyRequest): AuthenticatedParty {
  if (request.party === undefined) throw new MalusError('unauthenticated', 'request is not authenticated');
  return request.party;
}
