/**
 * The closed list of Malus error codes. Callers branch on `code`, never on messages.
 * Every code has an entry in docs/errors.md (a test keeps the two in step).
 *
 * `status` is the HTTP status the API answers with; `exit` is the CLI exit code
 * (2 = bad input or usage, 1 = a check ran and failed, 3 = the service or the machine failed).
 */
export const ERROR_CODES = {
  'usage': { status: 400, exit: 2, title: 'Bad command-line usage' },
  'invalid-input': { status: 400, exit: 2, title: 'Input failed validation' },
  'malformed-body': { status: 400, exit: 2, title: 'Request body is not valid JSON' },
  'file-unreadable': { status: 400, exit: 2, title: 'A file could not be read' },
  'agreement-invalid': { status: 400, exit: 2, title: 'Agreement is not well-formed' },
  'agreement-mismatch': { status: 409, exit: 2, title: 'Agreement does not match the collaboration' },
  'key-file-invalid': { status: 400, exit: 2, title: 'Key file is malformed' },
  'key-file-permissions': { status: 400, exit: 2, title: 'Key file is readable by others' },
  'key-file-passphrase': { status: 400, exit: 2, title: 'Key file passphrase is missing or wrong' },
  'signature-invalid': { status: 422, exit: 1, title: 'Signature does not verify' },
  'signature-wrong-hash': { status: 422, exit: 1, title: 'Signature is over a different agreement hash' },
  'signature-not-party': { status: 403, exit: 1, title: 'Signer is not a party to the agreement' },
  'signature-not-signer': { status: 403, exit: 1, title: 'Party does not hold the signer role' },
  'key-release-denied': { status: 403, exit: 1, title: 'Key release denied' },
  'attestation-refused': { status: 422, exit: 1, title: 'Attestation evidence was refused' },
  'query-denied': { status: 422, exit: 1, title: 'Query breaks the agreement' },
  'budget-exhausted': { status: 409, exit: 1, title: 'Privacy budget is used up' },
  'idempotency-key-reused': { status: 422, exit: 2, title: 'Idempotency key was used for a different request' },
  'computation-not-allowed': { status: 403, exit: 1, title: 'The agreement does not allow this computation' },
  'unauthenticated': { status: 401, exit: 2, title: 'Request is not authenticated' },
  'forbidden': { status: 403, exit: 2, title: 'Caller may not do this' },
  'not-found': { status: 404, exit: 2, title: 'No such resource' },
  'conflict': { status: 409, exit: 2, title: 'Conflicts with the current state' },
  'payload-too-large': { status: 413, exit: 2, title: 'Request body is too large' },
  'unsupported-media-type': { status: 415, exit: 2, title: 'Request body has the wrong media type' },
  'query-failed': { status: 422, exit: 1, title: 'The query failed in the enclave' },
  'query-timeout': { status: 422, exit: 1, title: 'The query ran out of time in the enclave' },
  'result-too-large': { status: 422, exit: 1, title: 'The query result is over the enclave limit' },
  'decryption-failed': { status: 422, exit: 1, title: 'A sealed result does not open' },
  'result-undelivered': { status: 502, exit: 3, title: 'The enclave sent a result the server did not accept' },
  'request-timeout': { status: 408, exit: 3, title: 'Request took too long' },
  'server-unreachable': { status: 502, exit: 3, title: 'Server could not be reached' },
  'server-error': { status: 502, exit: 3, title: 'Server answered with an error' },
  'insufficient-storage': { status: 507, exit: 3, title: 'The server has no room for the upload' },
  'store-failure': { status: 500, exit: 3, title: 'The store failed' },
  'internal': { status: 500, exit: 3, title: 'Internal error' },
} as const satisfies Record<string, { status: number; exit: 1 | 2 | 3; title: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}
