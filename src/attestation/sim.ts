// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { createPrivateKey, sign as nodeSign, webcrypto, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { Encoder } from 'cbor-x';
import type { EvidenceFormat } from './formats.js';
import { verifyNitroDocument, type NitroClaims } from './nitro.js';
import { refuse, type Verified } from './reasons.js';
import { sha256Fingerprint } from './x509-chain.js';

// The simulated platform (`sim`): development evidence with exactly the shape of an AWS Nitro
// attestation document (COSE_Sign1, ES384, certificate + cabundle, PCRs, public_key, user_data,
// nonce), signed by a development CA that `malus serve` makes in its data directory. Verification is
// the Nitro pipeline with the development CA as the only root, plus the module-id marker, so a sim
// document can never pass as Nitro (its root is not pinned) and a Nitro document never as sim.
// Whoever holds the CA key can make evidence for any measurement: sim proves nothing about the code.

export const SIM_MODULE_PREFIX = 'malus-sim:';
const SIM_CA_NAME = 'CN=Malus simulated TEE development CA (NOT CONFIDENTIAL), O=Malus';
const ECDSA_P384 = { name: 'ECDSA', namedCurve: 'P-384' } as const;
const SIGN_SHA384 = { name: 'ECDSA', hash: 'SHA-384' } as const;
const DAY_MS = 86_400_000;

// @peculiar/x509 uses Node's global WebCrypto (globalThis.crypto) by default.
const crypto = webcrypto;

/** The development CA: a self-signed P-384 certificate and its private key (PKCS #8 DER). */
export interface SimCa {
  readonly certificate: Uint8Array;
  readonly privateKey: Uint8Array;
}

/** One simulated enclave's attestation identity: a P-384 key and the leaf certificate the CA gave it. */
export interface SimAttester {
  readonly moduleId: string;
  readonly caCertificate: Uint8Array;
  readonly leafCertificate: Uint8Array;
  readonly leafKey: KeyObject;
}

export interface SimEvidenceInput {
  /** PCR0: the measurement the simulated enclave claims (48 bytes). */
  readonly measurement: Uint8Array;
  readonly userData?: Uint8Array;
  readonly publicKey?: Uint8Array;
  readonly nonce?: Uint8Array;
  readonly now: Date;
}

export async function createSimCa(now: Date, validityDays = 3650): Promise<SimCa> {
  const keys = await crypto.subtle.generateKey(ECDSA_P384, true, ['sign', 'verify']);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: SIM_CA_NAME,
      keys,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + validityDays * DAY_MS),
      signingAlgorithm: SIGN_SHA384,
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    },
  );
  const privateKey = new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { certificate: new Uint8Array(certificate.rawData), privateKey };
}

/** The SHA-256 fingerprint of the CA certificate: the trust anchor a verifier of sim evidence pins. */
export function simCaFingerprint(ca: Pick<SimCa, 'certificate'>): string {
  return sha256Fingerprint(ca.certificate);
}

/** A fresh attestation key and a leaf certificate for it, valid for `validityHours`. */
export async function createSimAttester(ca: SimCa, now: Date, validityHours = 24): Promise<SimAttester> {
  const caKey = await crypto.subtle.importKey('pkcs8', new Uint8Array(ca.privateKey), ECDSA_P384, false, ['sign']);
  const caCert = new x509.X509Certificate(new Uint8Array(ca.certificate));
  const leafKeys = await crypto.subtle.generateKey(ECDSA_P384, true, ['sign', 'verify']);
  const moduleId = `${SIM_MODULE_PREFIX}${Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString('hex')}`;
  const leaf = await x509.X509CertificateGenerator.create(
    {
      subject: `CN=${moduleId}, O=Malus`,
      issuer: caCert.subject,
      publicKey: leafKeys.publicKey,
      signingKey: caKey,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + validityHours * 3_600_000),
      signingAlgorithm: SIGN_SHA384,
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
    },
  );
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', leafKeys.privateKey));
  return {
    moduleId,
    caCertificate: ca.certificate,
    leafCertificate: new Uint8Array(leaf.rawData),
    leafKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }),
  };
}

const encoder = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });

/** Signs a Nitro-shaped attestation document (untagged COSE_Sign1, ES384). */
export function produceSimEvidence(attester: SimAttester, input: SimEvidenceInput): Uint8Array {
  if (input.measurement.length !== 48) throw new RangeError('a sim measurement is 48 bytes (SHA-384)');
  const pcrs = new Map<number, Uint8Array>();
  pcrs.set(0, input.measurement);
  // PCR1 and PCR2 are never all zero, so a sim enclave is not a "debug" enclave in Nitro's sense.
  pcrs.set(1, new Uint8Array(48).fill(0x5a));
  pcrs.set(2, new Uint8Array(48).fill(0x5a));
  const payload = new Map<string, unknown>([
    ['module_id', attester.moduleId],
    ['digest', 'SHA384'],
    ['timestamp', input.now.getTime()],
    ['pcrs', pcrs],
    ['certificate', attester.leafCertificate],
    ['cabundle', [attester.caCertificate]],
    ['public_key', input.publicKey ?? null],
    ['user_data', input.userData ?? null],
    ['nonce', input.nonce ?? null],
  ]);
  const protectedBytes = encoder.encode(new Map([[1, -35]]));
  const payloadBytes = encoder.encode(payload);
  const toBeSigned = encoder.encode(['Signature1', protectedBytes, new Uint8Array(0), payloadBytes]);
  const signature = nodeSign('sha384', toBeSigned, { key: attester.leafKey, dsaEncoding: 'ieee-p1363' });
  return new Uint8Array(encoder.encode([protectedBytes, new Map(), payloadBytes, new Uint8Array(signature)]));
}

/** Anything that produces evidence for a binding: the sim platform here, a TEE's driver elsewhere. */
export interface Attester {
  readonly platform: EvidenceFormat;
  /** The measurement the evidence will show, lower-case hex. */
  readonly measurement: string;
  attest(input: { binding: Uint8Array; publicKey: Uint8Array; now: Date }): Promise<{ evidence: Uint8Array; certificates: Uint8Array[] }>;
}

/**
 * An attester for the sim platform: Nitro-shaped evidence with the binding as user_data. Given the
 * CA, it issues itself a fresh leaf certificate an hour before the current one expires, so a
 * long-running service keeps producing valid evidence (as Nitro's own leaves are short-lived).
 */
export function simPlatformAttester(identity: SimAttester, measurement: Uint8Array, renewal?: { ca: SimCa }): Attester {
  let current = identity;
  let expires = Date.parse(new x509.X509Certificate(new Uint8Array(identity.leafCertificate)).notAfter.toISOString());
  return {
    platform: 'sim',
    measurement: Buffer.from(measurement).toString('hex'),
    attest: async ({ binding, publicKey, now }) => {
      if (renewal !== undefined && now.getTime() > expires - 3_600_000) {
        current = await createSimAttester(renewal.ca, now);
        expires = Date.parse(new x509.X509Certificate(new Uint8Array(current.leafCertificate)).notAfter.toISOString());
      }
      return { evidence: produceSimEvidence(current, { measurement, userData: binding, publicKey, now }), certificates: [] };
    },
  };
}

export interface SimTrust {
  /** Fingerprints of the development CAs accepted (the server publishes its own). */
  readonly rootFingerprints: readonly string[];
}

/** Verifies sim evidence: the Nitro pipeline under the development CA, and the sim marker. */
export function verifySimEvidence(document: Uint8Array, at: Date, trust: SimTrust): Verified<NitroClaims> {
  if (trust.rootFingerprints.length === 0) return refuse('untrusted-root', 'no development CA is trusted for sim evidence');
  const result = verifyNitroDocument(document, at, { rootFingerprints: trust.rootFingerprints });
  if (!result.ok) return result;
  if (!result.claims.moduleId.startsWith(SIM_MODULE_PREFIX)) {
    return refuse('malformed', `module_id does not start with ${SIM_MODULE_PREFIX}: not simulated evidence`);
  }
  return result;
}
