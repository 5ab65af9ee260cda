import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  authenticatedErrors,
  challengeView,
  collaborationIdParams,
  datasetKeyList,
  problemSchema,
  registerKeyBody,
  registeredKeyView,
  releaseBody,
  releaseView,
  serviceAttestationQuery,
  serviceAttestationView,
  simRootView,
} from '../../api/index.js';
import { simCaFingerprint, type Attester } from '../../attestation/index.js';
import { toBase64Url } from '../../crypto/index.js';
import { MalusError } from '../../errors/index.js';
import { attestService, issueChallenge, registerKey, releaseKeys, type KeyReleaseContext } from '../../keyrelease/index.js';
import { callerOf, type AuthenticatedParty } from '../auth.js';
import { base64UrlField } from '../confidential.js';

// The key-release service's routes, the same under `malus serve` (embedded) and `malus kms serve`
// (a party's own). Every route is signed; a release is answered 403 with its reasons, never with
// anything about which dataset keys exist.

const security = [{ httpMessageSignature: [] }];

export interface KeyReleaseRouteServices {
  readonly keyRelease: KeyReleaseContext;
  readonly attester: Attester;
  readonly simRoot?: Uint8Array;
  /**
   * Throws unless the caller may ask for challenges and releases: a registered worker under
   * `malus serve`; under `malus kms serve`, for a release, the worker holding that running job.
   * A refusal here is not a key-release decision and is not logged.
   */
  readonly authorizeWorker: (caller: AuthenticatedParty, release?: { collaborationId: string; jobId: string }) => Promise<void>;
}

async function requireMember(services: KeyReleaseRouteServices, id: string, caller: AuthenticatedParty): Promise<void> {
  const ctx = services.keyRelease;
  const active = await ctx.agreements.active(id, ctx.now());
  // Outsiders learn nothing: a collaboration they are not in is "not found", as everywhere else.
  if (active?.agreement.parties.some((p) => p.id === caller.id) !== true) throw new MalusError('not-found', `collaboration ${id} not found or not active`);
}

export function keyReleaseRoutes(services: KeyReleaseRouteServices): FastifyPluginAsyncZod {
  const ctx = services.keyRelease;
  return (app) => {
    app.get('/v1/attestation/sim-root', {
      config: { public: true },
      schema: {
        summary: "The development CA of this service's sim platform (DER, base64url): sim evidence made here chains to it",
        tags: ['key release'],
        response: { 200: simRootView, 404: problemSchema },
      },
      handler: () => {
        if (services.simRoot === undefined) throw new MalusError('not-found', 'this service runs on no sim platform');
        return { certificate: toBase64Url(services.simRoot), fingerprint: simCaFingerprint({ certificate: services.simRoot }) };
      },
    });

    app.get('/v1/kms/collaborations/:id/attestation', {
      schema: {
        summary: "The key-release service's evidence, binding its encryption key, the caller's nonce and the active agreement",
        tags: ['key release'],
        security,
        params: collaborationIdParams,
        querystring: serviceAttestationQuery,
        response: { 200: serviceAttestationView, 409: problemSchema, ...authenticatedErrors },
      },
      handler: async (request) => {
        await requireMember(services, request.params.id, callerOf(request));
        const attested = await attestService(ctx, services.attester, { collaborationId: request.params.id, nonce: base64UrlField(request.query.nonce, 'querystring.nonce') });
        return {
          collaboration: request.params.id,
          agreement: attested.agreementHash,
          platform: attested.platform as 'sim',
          evidence: toBase64Url(attested.evidence),
          certificates: attested.certificates.map(toBase64Url),
          encryptionKey: toBase64Url(ctx.encryption.publicKey),
          ...(services.simRoot === undefined ? {} : { simRoot: toBase64Url(services.simRoot) }),
        };
      },
    });

    app.post('/v1/kms/collaborations/:id/keys', {
      schema: {
        summary: 'Register a data key, sealed (HPKE) to the service key, for a dataset of a table the caller owns',
        tags: ['key release'],
        security,
        params: collaborationIdParams,
        body: registerKeyBody,
        response: { 200: registeredKeyView, 201: registeredKeyView, 403: problemSchema, 409: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => {
        const caller = callerOf(request);
        await requireMember(services, request.params.id, caller);
        const { dataset, table, sealedKey } = request.body;
        const outcome = await registerKey(ctx, {
          collaborationId: request.params.id,
          datasetId: dataset,
          table,
          caller: caller.id,
          sealed: { enc: base64UrlField(sealedKey.enc, 'body.sealedKey.enc'), ciphertext: base64UrlField(sealedKey.ciphertext, 'body.sealedKey.ciphertext') },
        });
        return reply.code(outcome.created ? 201 : 200).send({ dataset, table, owner: caller.id, keyCommitment: outcome.keyCommitment, created: outcome.created });
      },
    });

    app.get('/v1/kms/collaborations/:id/keys', {
      schema: {
        summary: 'The data keys this service holds for a collaboration: datasets, owners and key commitments, never keys',
        tags: ['key release'],
        security,
        params: collaborationIdParams,
        response: { 200: datasetKeyList, ...authenticatedErrors },
      },
      handler: async (request) => {
        await requireMember(services, request.params.id, callerOf(request));
        const keys = await ctx.store.keys.listKeys(request.params.id);
        return { keys: keys.map((k) => ({ dataset: k.datasetId, table: k.table, owner: k.owner, keyCommitment: k.keyCommitment, createdAt: k.createdAt })) };
      },
    });

    app.post('/v1/kms/challenges', {
      schema: {
        summary: 'A single-use challenge (60 s) for an enclave to bind into its release evidence',
        tags: ['key release'],
        security,
        response: { 201: challengeView, 403: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => {
        await services.authorizeWorker(callerOf(request));
        const challenge = await issueChallenge(ctx.store, 'release', ctx.now());
        return reply.code(201).send({ challenge: challenge.challenge, expiresAt: challenge.expiresAt.toISOString() });
      },
    });

    app.post('/v1/kms/collaborations/:id/releases', {
      schema: {
        summary: "Release a job's data keys to an attested enclave, sealed to its key; 403 with reasons when denied",
        tags: ['key release'],
        security,
        params: collaborationIdParams,
        body: releaseBody,
        response: { 200: releaseView, 403: problemSchema, ...authenticatedErrors },
      },
      handler: async (request) => {
        const caller = callerOf(request);
        await services.authorizeWorker(caller, { collaborationId: request.params.id, jobId: request.body.job });
        if (!(await ctx.agreements.exists(request.params.id))) throw new MalusError('not-found', `collaboration ${request.params.id} not found`);
        const body = request.body;
        const decision = await releaseKeys(ctx, {
          collaborationId: request.params.id,
          jobId: body.job,
          workerId: caller.signingKey,
          challenge: body.challenge,
          presented: {
            platform: body.platform,
            evidence: base64UrlField(body.evidence, 'body.evidence'),
            certificates: body.certificates.map((c, i) => base64UrlField(c, `body.certificates[${i}]`)),
          },
          enclaveKey: base64UrlField(body.encryptionKey, 'body.encryptionKey'),
        });
        if (!decision.granted) {
          request.log.info({ reasons: decision.reasons.map((r) => r.code) }, 'key release denied');
          throw new MalusError('key-release-denied', 'key release denied', { reasons: decision.reasons });
        }
        return {
          agreement: decision.agreementHash,
          keys: decision.keys.map((k) => ({ dataset: k.dataset, sealedKey: { enc: toBase64Url(k.sealed.enc), ciphertext: toBase64Url(k.sealed.ciphertext) } })),
        };
      },
    });
    return Promise.resolve();
  };
}
