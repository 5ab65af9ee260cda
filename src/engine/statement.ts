import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { signEd25519, toBase64Url, verifyEd25519, fromBase64Url } from '../crypto/index.js';
import type { PrivacyCost } from '../dp/index.js';
import { MalusError } from '../errors/index.js';
import type { ParameterValue } from '../rules/index.js';

// The statement an enclave signs about a finished job (docs/enclave.md): canonical JSON (RFC 8785),
// signed with the worker's Ed25519 key under a label, so the signature means nothing elsewhere.

export const RESULT_FORMAT = 'malus.job-result/v1';
const SIGNATURE_LABEL = 'malus.job-result-signature/v1\n';
export const SIMULATED_NOTICE = 'SIMULATED TEE: NOT CONFIDENTIAL';

export interface ResultStatement {
  readonly format: typeof RESULT_FORMAT;
  readonly job: string;
  readonly collaboration: string;
  readonly agreement: string;
  readonly kind: string;
  /** What the job produced; for key-check, each dataset with the commitment to the key the enclave holds. */
  readonly output: Readonly<Record<string, unknown>>;
  readonly enclave: {
    readonly platform: string;
    readonly measurement: string;
    /** base64url Ed25519 key that signed this statement. */
    readonly signingKey: string;
    /** `sha256:<hex>` of the evidence the key release accepted. */
    readonly evidence: readonly string[];
  };
  /** Present, and exactly SIMULATED_NOTICE, when the enclave is the sim platform. */
  readonly notice?: typeof SIMULATED_NOTICE;
  readonly time: string;
}

/** The `output` of a query job's statement (docs/enclave.md). */
export interface QueryOutput {
  readonly query: {
    /** checkQuery's queryHash: the SQL checked (the template's SQL for a template). */
    readonly hash: string;
    readonly template?: string;
    /** The template parameters as submitted. */
    readonly parameters?: Readonly<Record<string, ParameterValue>>;
    /** `sha256:` of the rewritten SQL the enclave ran. */
    readonly rewritten: string;
  };
  readonly inputs: readonly {
    readonly dataset: string;
    readonly table: string;
    /** The manifest's ciphertext hash. */
    readonly ciphertext: string;
    readonly rows: number;
    readonly keyCommitment: string;
  }[];
  readonly result: {
    /** `sha256:` of the plaintext payload (malus.result-rows/v1 canonical JSON). */
    readonly sha256: string;
    /** `sha256:` of the sealed ciphertext bytes (with the GCM tag). */
    readonly ciphertext: string;
    readonly rows: number;
    readonly columns: readonly string[];
    // No count of the groups the k constraints withheld: that count is itself about groups under k.
    readonly receivers: readonly string[];
  };
  /** Under differential privacy: what the run spent, and each noisy statistic's mechanism and scale (in units). */
  readonly privacy?: {
    readonly policy: number;
    readonly accounting: 'pure' | 'zcdp';
    readonly cost: PrivacyCost;
    readonly measurements: readonly { readonly statistic: string; readonly mechanism: string; readonly scale: string; readonly unit: string }[];
    /** A group is released only when each of these noisy identity counts reaches its minimum. */
    readonly release: readonly { readonly measurement: number; readonly minimum: string }[];
  };
}

export interface SignedStatement {
  readonly statement: ResultStatement;
  /** base64url Ed25519 signature over the label and the canonical statement. */
  readonly signature: string;
}

export function canonicalStatement(statement: ResultStatement): Uint8Array {
  const text = canonicalize(statement);
  if (text === undefined) throw new MalusError('internal', 'statement cannot be canonicalized');
  return new TextEncoder().encode(text);
}

export function statementHash(statement: ResultStatement): string {
  return `sha256:${createHash('sha256').update(canonicalStatement(statement)).digest('hex')}`;
}

const signedBytes = (statement: ResultStatement): Uint8Array => Buffer.concat([Buffer.from(SIGNATURE_LABEL), canonicalStatement(statement)]);

export function signStatement(statement: ResultStatement, signingSecret: Uint8Array): SignedStatement {
  return { statement, signature: toBase64Url(signEd25519(signingSecret, signedBytes(statement))) };
}

/** Whether the signature verifies under the key the statement names. */
export function verifyStatementSignature(signed: SignedStatement): boolean {
  const key = fromBase64Url(signed.statement.enclave.signingKey);
  const signature = fromBase64Url(signed.signature);
  if (key === undefined || signature === undefined) return false;
  return verifyEd25519(key, signedBytes(signed.statement), signature);
}
