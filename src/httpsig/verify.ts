import { verifyEd25519 } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import { checkContentDigest } from './digest.js';
import { lookupField, type HeaderValue } from './fields.js';
import {
  ALGORITHM,
  DEFAULT_COMPONENTS,
  DEFAULT_LABEL,
  DEFAULT_MAX_AGE_SECONDS,
  DEFAULT_MAX_SKEW_SECONDS,
  MAX_SIGNATURE_FIELD_LENGTH,
} from './profile.js';
import { parseSfDictionary, type SfMember, type SfParams } from './sf.js';
import { buildSignatureBase, encodeSignatureBase } from './signature-base.js';

export interface VerifyRequestParams {
  readonly method: string;
  /** The full target URI as this server reconstructs it. */
  readonly url: string;
  /** Lower-case names, as in node's IncomingHttpHeaders. */
  readonly headers: Readonly<Record<string, HeaderValue>>;
  /**
   * The body, checked against Content-Digest; or DEFERRED_BODY to verify the signature before the
   * body is read (a server refusing strangers before it buffers their bytes). The result then
   * carries the Content-Digest field, which the caller must check with checkContentDigest.
   */
  readonly body: Uint8Array | typeof DEFERRED_BODY;
  /** Unix seconds: the verification time, passed explicitly. */
  readonly now: number;
  /** Oldest acceptable `created`, in seconds before `now`; default 300. */
  readonly maxAgeSeconds?: number;
  /** How far `created` may lie in the future (clock skew); default 30. */
  readonly maxSkewSeconds?: number;
  /** The Ed25519 public key for a keyid, or undefined. Exceptions it throws are passed through. */
  readonly resolveKey: (keyId: string) => Uint8Array | undefined;
  /** Components the signature must cover; default `@method`, `@target-uri`, `content-digest`. */
  readonly requiredComponents?: readonly string[];
}

/** Stands for a body that has not arrived yet (see VerifyRequestParams.body). */
export const DEFERRED_BODY: unique symbol = Symbol('deferred body');

export type VerifyFailure =
  | 'missing-signature'
  | 'malformed-signature'
  | 'missing-component'
  | 'unsupported-algorithm'
  | 'unknown-key'
  | 'expired'
  | 'future'
  | 'missing-nonce'
  | 'digest-mismatch'
  | 'bad-signature';

export type VerifyRequestResult =
  | {
      ok: true;
      keyId: string;
      created: number;
      nonce: string;
      label: string;
      /** With a deferred body: the Content-Digest field still to check against it (undefined when absent). */
      pendingDigest?: string | undefined;
    }
  | { ok: false; reason: VerifyFailure; detail: string };

type Failure = Extract<VerifyRequestResult, { ok: false }>;

/** Carries an exception out of the caller's resolveKey past the catch-all below. */
class ResolverFailure extends Error {
  constructor(readonly original: unknown) {
    super('resolveKey failed');
  }
}

/**
 * Verifies the RFC 9421 signature labelled `malus` (or the only one present). Returns a reason
 * rather than throwing for anything the request carries. The nonce is returned, not remembered:
 * replay protection within the max-age window is the caller's job.
 */
export function verifyRequest(p: VerifyRequestParams): VerifyRequestResult {
  const maxAge = p.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS;
  const maxSkew = p.maxSkewSeconds ?? DEFAULT_MAX_SKEW_SECONDS;
  // A NaN here would quietly disable the time checks, so these are caller bugs, not reasons.
  if (!Number.isFinite(p.now) || !isWindow(maxAge) || !isWindow(maxSkew)) {
    throw new MalusError('invalid-input', 'verifyRequest needs a finite now and non-negative time windows');
  }
  try {
    return verify(p, maxAge, maxSkew);
  } catch (error) {
    if (error instanceof ResolverFailure) throw error.original;
    return fail('malformed-signature', 'the signature could not be processed');
  }
}

function verify(p: VerifyRequestParams, maxAge: number, maxSkew: number): VerifyRequestResult {
  const inputField = readSignatureField(p.headers, 'signature-input');
  if (typeof inputField !== 'string') return inputField;
  const signatureField = readSignatureField(p.headers, 'signature');
  if (typeof signatureField !== 'string') return signatureField;

  const inputs = parseSfDictionary(inputField);
  const signatures = parseSfDictionary(signatureField);
  if (inputs === undefined || signatures === undefined) {
    return fail('malformed-signature', 'Signature-Input or Signature is not a structured dictionary');
  }

  const label = chooseLabel(inputs);
  if (label === undefined) {
    return fail('malformed-signature', `no signature labelled ${DEFAULT_LABEL} and not exactly one signature`);
  }
  const input = inputs.get(label);
  const signatureMember = signatures.get(label);
  if (input === undefined || signatureMember === undefined) {
    return fail('malformed-signature', 'Signature-Input and Signature do not share the chosen label');
  }
  const signature = readSignatureBytes(signatureMember);
  if (signature === undefined) return fail('malformed-signature', 'Signature is not a 64-byte byte sequence');

  const covered = readCoveredComponents(input);
  if (typeof covered === 'string') return fail('malformed-signature', covered);
  const { components, params } = covered;

  const created = params.get('created');
  if (created === undefined) return fail('malformed-signature', 'created parameter is missing');
  if (!isInteger(created)) return fail('malformed-signature', 'created parameter is not an integer');
  const expires = params.get('expires');
  if (expires !== undefined && !isInteger(expires)) {
    return fail('malformed-signature', 'expires parameter is not an integer');
  }
  const keyId = params.get('keyid');
  if (typeof keyId !== 'string' || keyId === '') {
    return fail('malformed-signature', 'keyid parameter is missing or not a string');
  }
  const alg = params.get('alg');
  if (alg !== undefined && alg !== ALGORITHM) return fail('unsupported-algorithm', 'only alg="ed25519" is accepted');

  const missing = (p.requiredComponents ?? DEFAULT_COMPONENTS).filter((name) => !components.includes(name));
  if (missing.length > 0) return fail('missing-component', `signature does not cover ${missing.join(', ')}`);

  const nonce = params.get('nonce');
  if (typeof nonce !== 'string' || nonce === '') {
    return fail('missing-nonce', 'nonce parameter is missing or not a string');
  }

  if (created > p.now + maxSkew) return fail('future', 'created lies further in the future than the allowed skew');
  if (p.now - created > maxAge) return fail('expired', 'created is older than the allowed age');
  if (expires !== undefined && p.now > expires) return fail('expired', 'expires has passed');

  let publicKey: Uint8Array | undefined;
  try {
    publicKey = p.resolveKey(keyId);
  } catch (error) {
    throw new ResolverFailure(error);
  }
  if (publicKey === undefined) return fail('unknown-key', `no key for keyid ${describe(keyId)}`);

  const message = { method: p.method, url: p.url, headers: p.headers };
  const base = buildSignatureBase(message, components, params);
  if (!base.ok) {
    return fail(base.kind === 'missing-component' ? 'missing-component' : 'malformed-signature', base.detail);
  }
  if (!verifyEd25519(publicKey, encodeSignatureBase(base.base), signature)) {
    return fail('bad-signature', 'the signature does not verify over the signature base');
  }

  // The signature vouches for the header; this ties the header to the bytes that arrived.
  const digestField = lookupField(p.headers, 'content-digest');
  if (digestField.kind === 'invalid') return fail('digest-mismatch', digestField.detail);
  if (digestField.kind === 'present' || components.includes('content-digest')) {
    const digest = digestField.kind === 'present' ? digestField.value : undefined;
    if (p.body === DEFERRED_BODY) {
      if (digest === undefined) return fail('digest-mismatch', 'Content-Digest is missing');
      return { ok: true, keyId, created, nonce, label, pendingDigest: digest };
    }
    const problem = checkContentDigest(digest, p.body);
    if (problem !== undefined) return fail('digest-mismatch', problem);
  }

  return { ok: true, keyId, created, nonce, label };
}

function fail(reason: VerifyFailure, detail: string): Failure {
  return { ok: false, reason, detail };
}

function readSignatureField(headers: VerifyRequestParams['headers'], name: string): string | Failure {
  const field = lookupField(headers, name);
  if (field.kind === 'absent' || (field.kind === 'present' && field.value === '')) {
    return fail('missing-signature', `${name} header is missing`);
  }
  if (field.kind === 'invalid') return fail('malformed-signature', field.detail);
  if (field.value.length > MAX_SIGNATURE_FIELD_LENGTH) return fail('malformed-signature', `${name} header is too long`);
  return field.value;
}

/** The `malus` signature if there is one, else the only one; several others are ambiguous. */
function chooseLabel(inputs: ReadonlyMap<string, SfMember>): string | undefined {
  if (inputs.has(DEFAULT_LABEL)) return DEFAULT_LABEL;
  if (inputs.size !== 1) return undefined;
  const [only] = inputs.keys();
  return only;
}

function readSignatureBytes(member: SfMember): Uint8Array | undefined {
  if (member.kind !== 'item') return undefined;
  const { value } = member.item;
  if (!(value instanceof ArrayBuffer) || value.byteLength !== 64) return undefined;
  return new Uint8Array(value);
}

function readCoveredComponents(member: SfMember): { components: string[]; params: SfParams } | string {
  if (member.kind !== 'inner-list') return 'Signature-Input member is not an inner list';
  const components: string[] = [];
  for (const { value, params } of member.items) {
    if (typeof value !== 'string') return 'a component identifier is not a string';
    if (params.size > 0) return 'component parameters are not supported';
    components.push(value);
  }
  return { components, params: member.params };
}

function isWindow(seconds: number): boolean {
  return Number.isFinite(seconds) && seconds >= 0;
}

function isInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

/** A short, escaped rendering of untrusted text for detail strings. */
function describe(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}...` : text);
}
