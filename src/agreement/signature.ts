import { z } from 'zod';
import { fromBase64Url, signEd25519, toBase64Url, utf8, verifyEd25519 } from '../crypto/index.js';
import type { ErrorCode } from '../errors/index.js';
import { decodeSigningKey } from '../identity/index.js';
import type { Agreement } from './schema.js';

// A detached signature (`malus.signature/v1`) over an agreement's canonical hash. The signed bytes
// are domain-separated so that a signature on an agreement can never be replayed as anything else.

export const SIGNATURE_FORMAT = 'malus.signature/v1';

export const agreementSignatureSchema = z.strictObject({
  format: z.literal(SIGNATURE_FORMAT),
  collaboration: z.string().min(1).max(64),
  version: z.number().int().min(1),
  hash: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 lower-case hex>'),
  signer: z.string().regex(/^[0-9a-f]{20}$/, 'expected a party id'),
  signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/, 'expected 64 bytes of base64url'),
  signedAt: z.string().max(64),
});

export type AgreementSignature = z.infer<typeof agreementSignatureSchema>;

export function signatureMessage(hash: string): Uint8Array {
  return utf8(`malus.agreement/v1 signature\n${hash}\n`);
}

export interface Signer {
  readonly partyId: string;
  readonly signingSecret: Uint8Array;
}

export function signAgreement(agreement: Agreement, hash: string, signer: Signer, now: Date): AgreementSignature {
  return {
    format: SIGNATURE_FORMAT,
    collaboration: agreement.id,
    version: agreement.version,
    hash,
    signer: signer.partyId,
    signature: toBase64Url(signEd25519(signer.signingSecret, signatureMessage(hash))),
    signedAt: now.toISOString(),
  };
}

export type SignatureFailure = Extract<
  ErrorCode,
  'signature-invalid' | 'signature-wrong-hash' | 'signature-not-party' | 'signature-not-signer'
>;

export type SignatureVerdict =
  | { readonly signer: string; readonly valid: true }
  | { readonly signer: string; readonly valid: false; readonly code: SignatureFailure; readonly reason: string };

/** Checks one signature against the agreement it claims to sign. Pure: no clock, no I/O. */
export function verifyAgreementSignature(agreement: Agreement, hash: string, signature: AgreementSignature): SignatureVerdict {
  const signer = signature.signer;
  const fail = (code: SignatureFailure, reason: string): SignatureVerdict => ({ signer, valid: false, code, reason });
  if (signature.hash !== hash) {
    return fail('signature-wrong-hash', `signature by ${signer} is over ${signature.hash}, not this agreement (${hash})`);
  }
  const party = agreement.parties.find((p) => p.id === signer);
  if (party === undefined) return fail('signature-not-party', `signer ${signer} is not a party to this agreement`);
  if (!party.roles.includes('signer')) {
    return fail('signature-not-signer', `party ${signer} (${party.name}) does not have the signer role`);
  }
  const key = decodeSigningKey(party.signingKey);
  const bytes = fromBase64Url(signature.signature);
  if ('problem' in key || bytes === undefined || !verifyEd25519(key.key, signatureMessage(hash), bytes)) {
    return fail('signature-invalid', `signature by ${signer} (${party.name}) does not verify`);
  }
  return { signer, valid: true };
}
