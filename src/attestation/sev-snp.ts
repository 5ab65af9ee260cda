import { verify as verifySignature, type X509Certificate } from 'node:crypto';
import { refuse, type Verified } from './reasons.js';
import { checkChain, orderChain, parseCertificate, sha256Fingerprint } from './x509-chain.js';

// AMD SEV-SNP attestation reports (SEV-SNP ABI specification, ATTESTATION_REPORT, versions 2 and 3):
// 1184 bytes, signed with ECDSA P-384 / SHA-384 over bytes 0x000-0x29F by the chip's VCEK (or a
// VLEK); r and s are 72-byte little-endian integers at 0x2A0 and 0x2E8. The VCEK chains through the
// ASK to the AMD Root Key (ARK), self-signed, RSASSA-PSS; ARKs are pinned by fingerprint.

/** SHA-256 fingerprints of AMD's ARK certificates, by product line. */
export const AMD_ARK_SHA256: Readonly<Record<string, string>> = {
  milan: '69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd',
  genoa: '4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1',
};

const REPORT_SIZE = 0x4a0;
const SIGNED_END = 0x2a0;
const POLICY_DEBUG_BIT = 19n;

export interface SevSnpClaims {
  readonly version: number;
  readonly guestSvn: number;
  /** The guest policy as a 64-bit value in hex. */
  readonly policy: string;
  readonly debug: boolean;
  readonly familyId: string;
  readonly imageId: string;
  readonly vmpl: number;
  readonly signatureAlgorithm: number;
  readonly currentTcb: string;
  readonly platformInfo: string;
  readonly signingKey: 'vcek' | 'vlek';
  readonly reportData: string;
  readonly measurement: string;
  readonly hostData: string;
  readonly idKeyDigest: string;
  readonly authorKeyDigest: string;
  readonly reportId: string;
  readonly reportIdMa: string;
  readonly reportedTcb: string;
  readonly chipId: string;
  readonly committedTcb: string;
  readonly launchTcb: string;
}

export interface SevSnpTrust {
  /** The VCEK (or VLEK), then the ASK and ARK, in any order; DER or PEM-decoded DER. */
  readonly certificates: readonly Uint8Array[];
  /** Accepted ARK fingerprints; default: every entry of AMD_ARK_SHA256. */
  readonly arkFingerprints?: readonly string[];
}

const hexOf = (bytes: Buffer, from: number, length: number): string => bytes.subarray(from, from + length).toString('hex');
const u64 = (bytes: Buffer, at: number): string => bytes.readBigUInt64LE(at).toString(16).padStart(16, '0');

/** Parses every field of a version 2 or 3 report. */
export function parseSevSnpReport(report: Uint8Array): SevSnpClaims | { error: string } {
  if (report.length !== REPORT_SIZE) return { error: `a report is ${REPORT_SIZE} bytes, not ${report.length}` };
  const b = Buffer.from(report);
  const version = b.readUInt32LE(0x00);
  if (version !== 2 && version !== 3) return { error: `report version ${version} is not supported (2 or 3)` };
  const policy = b.readBigUInt64LE(0x08);
  const signingKey = (b.readUInt32LE(0x48) >> 2) & 0x7;
  if (signingKey > 1) return { error: `unknown signing key selector ${signingKey}` };
  return {
    version,
    guestSvn: b.readUInt32LE(0x04),
    policy: policy.toString(16).padStart(16, '0'),
    debug: ((policy >> POLICY_DEBUG_BIT) & 1n) === 1n,
    familyId: hexOf(b, 0x10, 16),
    imageId: hexOf(b, 0x20, 16),
    vmpl: b.readUInt32LE(0x30),
    signatureAlgorithm: b.readUInt32LE(0x34),
    currentTcb: u64(b, 0x38),
    platformInfo: u64(b, 0x40),
    signingKey: signingKey === 0 ? 'vcek' : 'vlek',
    reportData: hexOf(b, 0x50, 64),
    measurement: hexOf(b, 0x90, 48),
    hostData: hexOf(b, 0xc0, 32),
    idKeyDigest: hexOf(b, 0xe0, 48),
    authorKeyDigest: hexOf(b, 0x110, 48),
    reportId: hexOf(b, 0x140, 32),
    reportIdMa: hexOf(b, 0x160, 32),
    reportedTcb: u64(b, 0x180),
    chipId: hexOf(b, 0x1a0, 64),
    committedTcb: u64(b, 0x1e0),
    launchTcb: u64(b, 0x1f0),
  };
}

/** r and s are little-endian, 72 bytes each; P-384 needs the low 48 bytes of each, big-endian. */
function p1363Signature(b: Buffer): Buffer | undefined {
  const part = (at: number): Buffer | undefined => {
    const le = b.subarray(at, at + 72);
    if (le.subarray(48).some((x) => x !== 0)) return undefined;
    return Buffer.from(le.subarray(0, 48)).reverse();
  };
  const r = part(SIGNED_END);
  const s = part(SIGNED_END + 72);
  return r === undefined || s === undefined ? undefined : Buffer.concat([r, s]);
}

export function verifySevSnpReport(report: Uint8Array, at: Date, trust: SevSnpTrust): Verified<SevSnpClaims> {
  const claims = parseSevSnpReport(report);
  if ('error' in claims) return refuse('malformed', claims.error);
  if (claims.signatureAlgorithm !== 1) return refuse('unsupported-algorithm', `signature algorithm ${claims.signatureAlgorithm} is not ECDSA P-384 (1)`);
  const certs: X509Certificate[] = [];
  for (const [i, der] of trust.certificates.entries()) {
    const parsed = parseCertificate(der, `certificate ${i + 1}`);
    if ('code' in parsed) return { ok: false, reasons: [parsed] };
    certs.push(parsed);
  }
  const chain = orderChain(certs);
  if (chain?.length !== 3) return refuse('chain-invalid', 'the certificates do not form an ARK -> ASK -> VCEK chain');
  const arks = trust.arkFingerprints ?? Object.values(AMD_ARK_SHA256);
  if (!arks.includes(sha256Fingerprint((chain[0] as X509Certificate).raw))) {
    return refuse('untrusted-root', 'the chain does not end at a pinned AMD root key (ARK)');
  }
  const chainProblem = checkChain(chain, at);
  if (chainProblem !== undefined) return { ok: false, reasons: [chainProblem] };
  const signature = p1363Signature(Buffer.from(report));
  if (signature === undefined) return refuse('malformed', 'the signature components do not fit P-384');
  const vcek = chain[2] as X509Certificate;
  let valid = false;
  try {
    valid = verifySignature('sha384', report.subarray(0, SIGNED_END), { key: vcek.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    valid = false;
  }
  if (!valid) return refuse('bad-signature', 'the report signature does not verify under the VCEK');
  return { ok: true, claims };
}
