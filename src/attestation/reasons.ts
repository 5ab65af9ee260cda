// Verifiers return reasons with stable codes, never a bare boolean. Every code is documented in
// docs/attestation.md, and a test keeps the two in step.

export const ATTESTATION_REASON_CODES = [
  'malformed',
  'unsupported-algorithm',
  'untrusted-root',
  'chain-invalid',
  'certificate-not-yet-valid',
  'certificate-expired',
  'bad-signature',
  /** SEV-SNP: the report's CHIP_ID is not the VCEK's hwID. */
  'chip-mismatch',
  /** SEV-SNP: the report's REPORTED_TCB is not the TCB the VCEK or VLEK was issued for. */
  'tcb-mismatch',
  'debug-enclave',
] as const;

export type AttestationReasonCode = (typeof ATTESTATION_REASON_CODES)[number];

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
