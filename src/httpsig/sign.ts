import { randomBytes } from 'node:crypto';
import { isValidKeyStr } from 'structured-headers';
import { signEd25519, toBase64, toBase64Url } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import { contentDigest } from './digest.js';
import { ALGORITHM, DEFAULT_COMPONENTS, DEFAULT_LABEL, MAX_SF_INTEGER } from './profile.js';
import { encodeSignatureBase, serializeSignatureParams, signatureBase } from './signature-base.js';

export interface SignRequestParams {
  readonly method: string;
  /** The full target URI, exactly as the server will reconstruct it. */
  readonly url: string;
  readonly body?: Uint8Array;
  readonly keyId: string;
  /** The 32-byte Ed25519 seed. */
  readonly secretKey: Uint8Array;
  /** Unix seconds; defaults to now. */
  readonly created?: number;
  /** Defaults to 16 random bytes, base64url. */
  readonly nonce?: string;
  /** Dictionary key in Signature-Input and Signature; defaults to `malus`. */
  readonly label?: string;
}

// A type alias, not an interface, so it is assignable to header records as it is.
export type SignedRequestHeaders = {
  readonly 'content-digest': string;
  readonly 'signature-input': string;
  readonly 'signature': string;
};

// Parameters are sf-strings, which are printable ASCII only.
const PRINTABLE = /^[\x20-\x7e]+$/;

/**
 * Signs a request the Malus way: covers `@method`, `@target-uri` and `content-digest` with
 * created, nonce, keyid and alg="ed25519". Returns the three header fields to send.
 */
export function signRequest(p: SignRequestParams): SignedRequestHeaders {
  const label = p.label ?? DEFAULT_LABEL;
  if (!isValidKeyStr(label)) throw invalid('label must be a structured-field key (lower case, digits, _-.*)');
  if (p.secretKey.length !== 32) throw invalid('secretKey must be a 32-byte Ed25519 seed');
  if (!PRINTABLE.test(p.keyId)) throw invalid('keyId must be non-empty printable ASCII');
  const created = p.created ?? Math.floor(Date.now() / 1000);
  if (!Number.isSafeInteger(created) || created < 0 || created > MAX_SF_INTEGER) {
    throw invalid('created must be a non-negative integer number of seconds');
  }
  const nonce = p.nonce ?? toBase64Url(randomBytes(16));
  if (!PRINTABLE.test(nonce)) throw invalid('nonce must be non-empty printable ASCII');

  const digest = contentDigest(p.body ?? new Uint8Array(0));
  const params = new Map<string, string | number>([
    ['created', created],
    ['nonce', nonce],
    ['keyid', p.keyId],
    ['alg', ALGORITHM],
  ]);
  const message = { method: p.method, url: p.url, headers: { 'content-digest': digest } };
  const base = signatureBase(message, DEFAULT_COMPONENTS, params);
  const signature = signEd25519(p.secretKey, encodeSignatureBase(base));
  return {
    'content-digest': digest,
    'signature-input': `${label}=${serializeSignatureParams(DEFAULT_COMPONENTS, params)}`,
    'signature': `${label}=:${toBase64(signature)}:`,
  };
}

function invalid(message: string): MalusError {
  return new MalusError('invalid-input', `cannot sign the request: ${message}`);
}
