// Verifiers return reasons with stable codes, never a bare boolean.

export type AttestationReasonCode =
  | 'malformed'
  | 'unsupported-algorithm'
  | 'untrusted-root'
  | 'chain-invalid'
  | 'certificate-not-yet-valid'
  | 'certificate-expired'
  | 'bad-signature'
  | 'debug-enclave';

export interface AttestationReason {
  readonly code: AttestationReasonCode;
  readonly message: string;
}

export type Verified<Claims> =
  | { readonly ok: true; readonly claims: Claims }
  | { readonly ok: false; readonly reasons: readonly AttestationReason[] };

export function refuse<Claims>(code: AttestationReasonCode, message: string): Verified<Claims> {
  return { ok: false, reasons: [{ code, message }] };
}
