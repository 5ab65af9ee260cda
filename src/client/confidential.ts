import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { activeAgreement, agreementHash, assertAgreement, type Agreement } from '../agreement/index.js';
import {
  challengeView,
  claimView,
  datasetKeyList,
  jobReceiptView,
  jobView,
  registeredKeyView,
  releaseView,
  serviceAttestationView,
  simRootView,
  workerView,
  type JobReceiptView,
  type JobView,
  type ServiceAttestationView,
  type SubmitJobBody,
  type WorkerView,
} from '../api/index.js';
import { simCaFingerprint } from '../attestation/index.js';
import { fromBase64Url, hpkeSeal, toBase64Url } from '../crypto/index.js';
import type { ClaimedJob, WorkerPort } from '../engine/index.js';
import { MalusError, isMalusError, type Reason } from '../errors/index.js';
import {
  REGISTRATION_INFO,
  appraiseEnclave,
  registrationAad,
  type AgreementSource,
  type DecisionLog,
  type EvidenceTrust,
  type JobSource,
} from '../keyrelease/index.js';
import { signedManifestSchema } from '../ingest/index.js';
import { createClient, request, requestStream, type MalusClient } from './client.js';
import { getAgreement, getCollaboration } from './collaborations.js';

// The SDK's side of key release and jobs. A provider never takes the server's word for the clean
// room: before a data key leaves, it checks the key-release service's evidence against the agreement
// it signed itself, with a nonce of its own, and seals the key to the key that evidence binds.

const kmsPath = (id: string): string => `/v1/kms/collaborations/${encodeURIComponent(id)}`;
const jobsPath = (id: string): string => `/v1/collaborations/${encodeURIComponent(id)}/jobs`;

function decode(text: string, what: string): Uint8Array {
  const bytes = fromBase64Url(text);
  if (bytes === undefined) throw new MalusError('server-error', `the server sent ${what} that is not base64url`);
  return bytes;
}

export interface ServiceAppraisalOptions {
  readonly agreement: Agreement;
  readonly now?: Date;
  /**
   * Development CAs the caller trusts for sim evidence. By default the one the service presents is
   * trusted on first use: sim proves nothing either way, and says so.
   */
  readonly simRoots?: readonly string[];
  readonly trust?: Omit<EvidenceTrust, 'simRoots'>;
}

export interface AppraisedService {
  readonly encryptionKey: Uint8Array;
  readonly attestation: ServiceAttestationView;
  readonly measurement: string;
}

/** Fetches the key-release service's evidence with a fresh nonce and appraises it against `agreement`. */
export async function appraiseKeyReleaseService(client: MalusClient, options: ServiceAppraisalOptions): Promise<AppraisedService> {
  const { agreement } = options;
  const now = options.now ?? new Date();
  const nonce = randomBytes(32);
  const attestation = await request(client, {
    method: 'GET',
    path: `${kmsPath(agreement.id)}/attestation?nonce=${toBase64Url(nonce)}`,
    response: serviceAttestationView,
  });
  const hash = agreementHash(agreement);
  const reasons: Reason[] = [];
  if (attestation.agreement !== hash) {
    reasons.push({ code: 'agreement-mismatch', message: `the service attests to agreement ${attestation.agreement}, not the ${hash} you hold` });
  }
  const encryptionKey = decode(attestation.encryptionKey, 'an encryption key');
  const simRoots = options.simRoots ?? (attestation.simRoot === undefined ? [] : [simCaFingerprint({ certificate: decode(attestation.simRoot, 'a root') })]);
  const appraisal = appraiseEnclave({
    presented: { platform: attestation.platform, evidence: decode(attestation.evidence, 'evidence'), certificates: attestation.certificates.map((c) => decode(c, 'a certificate')) },
    policy: agreement.enclave,
    enclavePublicKey: encryptionKey,
    challenge: nonce,
    challengeIssuedAt: now,
    agreementHash: hash,
    trust: { ...options.trust, simRoots },
    now,
  });
  if (!appraisal.ok) reasons.push(...appraisal.reasons);
  if (reasons.length > 0 || !appraisal.ok) {
    throw new MalusError('attestation-refused', "the key-release service's evidence does not satisfy the agreement", { reasons });
  }
  return { encryptionKey, attestation, measurement: appraisal.verdict.measurement };
}

export interface RegisterDataKeyParameters extends ServiceAppraisalOptions {
  readonly dataset: string;
  readonly table: string;
  /** The 32-byte data key; sealed on this machine, never sent in the clear. */
  readonly dataKey: Uint8Array;
}

export async function registerDataKey(
  client: MalusClient,
  parameters: RegisterDataKeyParameters,
): Promise<z.infer<typeof registeredKeyView> & { service: AppraisedService }> {
  if (client.keys === undefined) throw new MalusError('usage', 'registering a data key needs your key file');
  const service = await appraiseKeyReleaseService(client, parameters);
  const sealed = await hpkeSeal(
    service.encryptionKey,
    parameters.dataKey,
    REGISTRATION_INFO,
    registrationAad({ collaborationId: parameters.agreement.id, datasetId: parameters.dataset, table: parameters.table, owner: client.keys.identity.id }),
  );
  const registered = await request(client, {
    method: 'POST',
    path: `${kmsPath(parameters.agreement.id)}/keys`,
    body: { dataset: parameters.dataset, table: parameters.table, sealedKey: { enc: toBase64Url(sealed.enc), ciphertext: toBase64Url(sealed.ciphertext) } },
    response: registeredKeyView,
  });
  return { ...registered, service };
}

export function listDataKeys(client: MalusClient, collaborationId: string): Promise<z.infer<typeof datasetKeyList>> {
  return request(client, { method: 'GET', path: `${kmsPath(collaborationId)}/keys`, response: datasetKeyList });
}

/** How long to wait before each further try of a submission the connection lost. */
const SUBMIT_RETRY_DELAYS_MS = [250, 1000, 4000];

/**
 * POSTs a submission under an idempotency key (the caller's, or a fresh one), trying again with
 * the same key when the answer is lost or the store was busy: the server then gives back the job
 * the first try queued, so a retry never queues, or charges, a second one (docs/api.md).
 */
async function postSubmission(client: MalusClient, collaborationId: string, body: SubmitJobBody): Promise<JobView> {
  const keyed = { ...body, idempotencyKey: body.idempotencyKey ?? randomBytes(16).toString('base64url') };
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await request(client, { method: 'POST', path: jobsPath(collaborationId), body: keyed, response: jobView });
    } catch (error) {
      const delay = SUBMIT_RETRY_DELAYS_MS[attempt];
      const transient = isMalusError(error, 'server-unreachable') || isMalusError(error, 'store-failure');
      if (delay === undefined || !transient) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

export function submitJob(
  client: MalusClient,
  collaborationId: string,
  body: { kind: 'key-check' | 'dataset-check'; datasets: string[]; idempotencyKey?: string },
): Promise<JobView> {
  return postSubmission(client, collaborationId, body);
}

/** A governed query as submitted: ad-hoc SQL or a template with parameters, and optionally the dataset of each table. */
export type QueryJobBody = SubmitJobBody extends infer B ? (B extends { kind: 'query' } ? Omit<B, 'kind'> : never) : never;

/**
 * Submits a query job (the caller must be an analyst). A query the agreement does not allow is
 * refused with `query-denied` and its `violations`, and is never queued.
 */
export function submitQuery(client: MalusClient, collaborationId: string, body: QueryJobBody): Promise<JobView> {
  return postSubmission(client, collaborationId, { kind: 'query', ...body });
}

/** A succeeded job's receipt, to verify offline (its log entry, statement, enclave evidence and agreement). */
export function getJobReceipt(client: MalusClient, collaborationId: string, jobId: string): Promise<JobReceiptView> {
  return request(client, { method: 'GET', path: `${jobsPath(collaborationId)}/${encodeURIComponent(jobId)}/receipt`, response: jobReceiptView });
}

export function getJob(client: MalusClient, collaborationId: string, jobId: string): Promise<JobView> {
  return request(client, { method: 'GET', path: `${jobsPath(collaborationId)}/${encodeURIComponent(jobId)}`, response: jobView });
}

/** Withdraws a queued job the caller submitted: it fails as `cancelled` and its privacy charge comes back. */
export function cancelJob(client: MalusClient, collaborationId: string, jobId: string): Promise<JobView> {
  return request(client, { method: 'DELETE', path: `${jobsPath(collaborationId)}/${encodeURIComponent(jobId)}`, response: jobView });
}

export async function listJobs(client: MalusClient, collaborationId: string): Promise<JobView[]> {
  return (await request(client, { method: 'GET', path: jobsPath(collaborationId), response: z.strictObject({ jobs: z.array(jobView) }) })).jobs;
}

/** Polls a job until it ends (or the timeout passes). */
export async function waitForJob(client: MalusClient, collaborationId: string, jobId: string, options: { timeoutMs?: number; intervalMs?: number } = {}): Promise<JobView> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    const job = await getJob(client, collaborationId, jobId);
    if (job.state === 'succeeded' || job.state === 'failed') return job;
    if (Date.now() > deadline) throw new MalusError('request-timeout', `job ${jobId} is still ${job.state}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
}

/** The fingerprint of a service's sim development CA (public: sim evidence proves nothing without it, nor with it). */
export async function getSimRootFingerprint(client: MalusClient): Promise<string> {
  const root = await request(client, { method: 'GET', path: '/v1/attestation/sim-root', response: simRootView, anonymous: true });
  const fingerprint = simCaFingerprint({ certificate: decode(root.certificate, 'a certificate') });
  if (fingerprint !== root.fingerprint) throw new MalusError('server-error', 'the sim root fingerprint does not match its certificate');
  return fingerprint;
}

/** The worker's side of the protocol over HTTP: the control plane, and any party's own key-release service. */
export function httpWorkerPort(client: MalusClient): WorkerPort {
  const services = new Map<string, MalusClient>();
  const serviceClient = (url: string | undefined): MalusClient => {
    if (url === undefined) return client;
    let found = services.get(url);
    if (found === undefined) {
      found = createClient({ server: url, ...(client.keys === undefined ? {} : { keys: client.keys }), timeoutMs: client.timeoutMs });
      services.set(url, found);
    }
    return found;
  };
  return {
    async dataset(jobId, dataset) {
      const path = `/v1/workers/me/jobs/${encodeURIComponent(jobId)}/datasets/${encodeURIComponent(dataset)}`;
      const signed = await request(client, { method: 'GET', path: `${path}/manifest`, response: signedManifestSchema });
      return { signed, content: await requestStream(client, path) };
    },
    async registrationChallenge() {
      return (await request(client, { method: 'POST', path: '/v1/workers/challenges', response: challengeView })).challenge;
    },
    async register(body) {
      await request(client, {
        method: 'POST',
        path: '/v1/workers',
        body: {
          platform: body.platform,
          evidence: toBase64Url(body.evidence),
          certificates: body.certificates.map(toBase64Url),
          encryptionKey: toBase64Url(body.encryptionKey),
          challenge: body.challenge,
        },
        response: workerView,
      });
    },
    async claim(): Promise<ClaimedJob | undefined> {
      const { job } = await request(client, { method: 'POST', path: '/v1/workers/me/claim', response: claimView });
      if (job === null) return undefined;
      return {
        id: job.id,
        collaborationId: job.collaboration,
        agreementHash: job.agreement,
        kind: job.kind,
        datasets: job.datasets,
        submittedBy: job.submittedBy,
        ...(job.query === undefined ? {} : { query: job.query }),
        ...(job.tables === undefined ? {} : { tables: job.tables }),
        heldByControlPlane: job.heldByControlPlane,
        versions: job.versions,
      };
    },
    async heartbeat(jobId) {
      await request(client, { method: 'POST', path: `/v1/workers/me/jobs/${encodeURIComponent(jobId)}/heartbeat`, response: z.strictObject({ state: z.literal('running') }) });
    },
    async releaseChallenge(service) {
      return (await request(serviceClient(service), { method: 'POST', path: '/v1/kms/challenges', response: challengeView })).challenge;
    },
    async release(service, r) {
      const answer = await request(serviceClient(service), {
        method: 'POST',
        path: `${kmsPath(r.collaborationId)}/releases`,
        body: {
          job: r.jobId,
          challenge: r.challenge,
          platform: r.platform,
          evidence: toBase64Url(r.evidence),
          certificates: r.certificates.map(toBase64Url),
          encryptionKey: toBase64Url(r.encryptionKey),
        },
        response: releaseView,
      });
      return answer.keys.map((k) => ({ dataset: k.dataset, sealed: { enc: decode(k.sealedKey.enc, 'a sealed key'), ciphertext: decode(k.sealedKey.ciphertext, 'a sealed key') } }));
    },
    // A query's result carries its sealed rows: the body may be tens of MiB (the route allows 64).
    async finish(jobId, outcome) {
      await request(client, { method: 'POST', path: `/v1/workers/me/jobs/${encodeURIComponent(jobId)}/finish`, body: outcome, response: jobView });
    },
  };
}

export type { JobReceiptView, JobView, ServiceAttestationView, WorkerView };

// A party's own key-release service (`malus kms serve`) learns agreements and jobs from the control
// plane, but trusts none of its answers: it recomputes the active agreement from the signed
// documents, and each job only names what the release pipeline checks again.

/**
 * Agreements from the control plane, with the active version recomputed from the signatures. It
 * remembers the newest version it has seen per collaboration and refuses an answer without it, so
 * the control plane cannot roll the service back by leaving a newer version out.
 */
export function remoteAgreementSource(client: MalusClient): AgreementSource {
  const newest = new Map<string, { version: number; hash: string }>();
  return {
    async active(collaborationId, now) {
      let view;
      try {
        view = await getCollaboration(client, collaborationId);
      } catch (error) {
        if (isMalusError(error, 'not-found')) return undefined;
        throw error;
      }
      const fetched = await Promise.all(view.versions.map((v) => getAgreement(client, collaborationId, { version: v.version })));
      // Hashes are recomputed here: nothing the control plane says about a document is taken on trust.
      const versions = fetched.map((v) => {
        const agreement = assertAgreement(v.agreement, `agreement ${v.hash}`);
        return { agreement, signatures: v.signatures, hash: agreementHash(agreement) };
      });
      const seen = newest.get(collaborationId);
      if (seen !== undefined && !versions.some((v) => v.hash === seen.hash)) {
        throw new MalusError('server-error', `the control plane no longer shows version ${seen.version} of ${collaborationId}, which it showed before`);
      }
      const last = versions.reduce<{ version: number; hash: string } | undefined>(
        (top, v) => (top === undefined || v.agreement.version > top.version ? { version: v.agreement.version, hash: v.hash } : top),
        undefined,
      );
      if (last !== undefined && (seen === undefined || last.version > seen.version)) newest.set(collaborationId, last);
      return activeAgreement(
        versions.map((v) => ({ agreement: v.agreement, signatures: v.signatures })),
        now,
      );
    },
    async exists(collaborationId) {
      try {
        await getCollaboration(client, collaborationId);
        return true;
      } catch (error) {
        if (isMalusError(error, 'not-found')) return false;
        throw error;
      }
    },
  };
}

export function remoteJobSource(client: MalusClient): JobSource {
  return {
    async get(collaborationId, jobId) {
      try {
        const job = await getJob(client, collaborationId, jobId);
        return { id: job.id, collaborationId: job.collaboration, agreementHash: job.agreement, datasets: job.datasets, state: job.state, workerId: job.worker };
      } catch (error) {
        if (isMalusError(error, 'not-found')) return undefined;
        throw error;
      }
    },
  };
}

/** Decisions go to the collaboration's log on the control plane, signed by the party. */
export function remoteDecisionLog(client: MalusClient): DecisionLog {
  return {
    kind: 'remote',
    record: async (events) => {
      for (const event of events) {
        await request(client, {
          method: 'POST',
          path: `/v1/collaborations/${encodeURIComponent(event.collaboration)}/key-decisions`,
          body: { event },
          response: z.strictObject({ index: z.number().int() }),
        });
      }
    },
  };
}
