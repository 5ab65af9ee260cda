import canonicalize from 'canonicalize';
import { sha256, toHex } from '../crypto/index.js';
import type { Agreement } from './schema.js';

/** RFC 8785 canonical JSON of the agreement: the exact bytes whose hash every signer signs. */
export function canonicalAgreementJson(agreement: Agreement): string {
  const text = canonicalize(agreement);
  if (text === undefined) throw new TypeError('agreement cannot be canonicalized');
  return text;
}

/** `sha256:<hex>` of the canonical form. */
export function agreementHash(agreement: Agreement): string {
  return `sha256:${toHex(sha256(canonicalAgreementJson(agreement)))}`;
}
