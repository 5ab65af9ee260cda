import { verify as verifySignature, type X509Certificate } from 'node:crypto';
import { certificateExtensions, readTlv, readUnsigned, readWhole, TAG, type Extension } from './der.js';
import { refuse, type AttestationReason, type Verified } from './reasons.js';
import { checkChain, orderChain, parseCertificate, sha256Fingerprint } from './x509-chain.js';

// AMD SEV-SNP attestation reports (SEV-SNP ABI specification, ATTESTATION_REPORT, versions 2 and 3):
// 1184 bytes, signed with ECDSA P-384 / SHA-384 over bytes 0x000-0x29F by the chip's VCEK (or a
// VLEK); r and s are 72-byte little-endian integers at 0x2A0 and 0x2E8. The VCEK chains through the
// ASK to the AMD Root Key (ARK), self-signed, RSASSA-PSS; ARKs are pinned by fingerprint. The VCEK
// names the chip and the firmware levels it was issued for in X.509 extensions (AMD's VCEK
// certificate and KDS interface specification, doc 57230): the report must come from that chip at
// exactly those levels.

/** SHA-256 fingerprints of AMD's ARK certificates, by product line (the VCEK and VLEK lines share the ARK). */
export const AMD_ARK_SHA256: Readonly<Record<ProductLine, string>> = Object.freeze({
  milan: '69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd',
  genoa: '4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1',
  turin: '1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a',
});

type ProductLine = 'milan' | 'genoa' | 'turin';

const REPORT_SIZE = 0x4a0;
const SIGNED_END = 0x2a0;
const POLICY_DEBUG_BIT = 19n;
const REPORTED_TCB = 0x180;
const CHIP_ID = 0x1a0;
const MAX_CERTIFICATES = 8;

// VCEK/VLEK extensions, under AMD's arc 1.3.6.1.4.1.3704.1 (doc 57230, tables 8 and 11).
const AMD_OID = '1.3.6.1.4.1.3704.1';
const OID = {
  productName: `${AMD_OID}.2`,
  blSpl: `${AMD_OID}.3.1`,
  teeSpl: `${AMD_OID}.3.2`,
  snpSpl: `${AMD_OID}.3.3`,
  ucodeSpl: `${AMD_OID}.3.8`,
  fmcSpl: `${AMD_OID}.3.9`,
  hwId: `${AMD_OID}.4`,
  cspId: `${AMD_OID}.5`,
} as const;

/**
 * Where each security patch level sits in REPORTED_TCB (a little-endian TCB_VERSION, SEV-SNP ABI
 * specification), and which certificate extension must hold the same value. Milan and Genoa:
 * byte 0 boot loader, 1 TEE, 6 SNP, 7 microcode (2-5 reserved). Turin (family 1Ah) moved the
 * fields: byte 0 FMC, 1 boot loader, 2 TEE, 3 SNP, 7 microcode (4-6 reserved).
 */
const TCB_LAYOUT: Readonly<Record<ProductLine, readonly (readonly [name: string, oid: string, byte: number])[]>> = {
  milan: [['boot loader', OID.blSpl, 0], ['TEE', OID.teeSpl, 1], ['SNP', OID.snpSpl, 6], ['microcode', OID.ucodeSpl, 7]],
  genoa: [['boot loader', OID.blSpl, 0], ['TEE', OID.teeSpl, 1], ['SNP', OID.snpSpl, 6], ['microcode', OID.ucodeSpl, 7]],
  turin: [['FMC', OID.fmcSpl, 0], ['boot loader', OID.blSpl, 1], ['TEE', OID.teeSpl, 2], ['SNP', OID.snpSpl, 3], ['microcode', OID.ucodeSpl, 7]],
};

/** The hwID extension is the whole 64-byte CHIP_ID, except on Turin, where it is CHIP_ID's first 8 bytes. */
const HWID_LENGTH: Readonly<Record<ProductLine, number>> = { milan: 64, genoa: 64, turin: 8 };

/** Every field of the report itself. */
export interface SevSnpReport {
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

export interface SevSnpClaims extends SevSnpReport {
  /** The product name the VCEK or VLEK states, e.g. `Milan-B0`. */
  readonly productName: string;
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
export function parseSevSnpReport(report: Uint8Array): SevSnpReport | { error: string } {
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

/** An extension's value as a DER INTEGER 0-255 (an SPL), undefined if absent or not one. */
function splOf(extensions: ReadonlyMap<string, Extension>, oid: string): number | undefined {
  const value = extensions.get(oid)?.value;
  const tlv = value === undefined ? undefined : readWhole(value);
  const n = value === undefined || tlv === undefined ? undefined : readUnsigned(value, tlv);
  return n !== undefined && n <= 0xff ? n : undefined;
}

/** The hwID extension: AMD's KDS puts the raw bytes in extnValue; a DER OCTET STRING around them is accepted too. */
function hwIdOf(value: Uint8Array, length: number): Uint8Array | undefined {
  if (value.length === length) return value;
  const tlv = readWhole(value);
  return tlv?.tag === TAG.octetString && tlv.end - tlv.contentStart === length ? value.subarray(tlv.contentStart) : undefined;
}

function productNameOf(extensions: ReadonlyMap<string, Extension>): string | undefined {
  const value = extensions.get(OID.productName)?.value;
  const tlv = value === undefined ? undefined : readTlv(value, 0);
  if (value === undefined || tlv?.tag !== TAG.ia5String || tlv.end !== value.length) return undefined;
  const name = Buffer.from(value.subarray(tlv.contentStart)).toString('latin1');
  return /^[\x20-\x7e]{1,64}$/.test(name) ? name : undefined;
}

/**
 * The endorsement key's certificate against the report: the product it names fixes the TCB layout;
 * every SPL it was issued for equals REPORTED_TCB's; a VCEK's hwID is this report's CHIP_ID. A VLEK
 * is issued to a cloud provider, not to a chip: it has no hwID, so only the TCB is compared.
 */
function checkEndorsementKey(key: X509Certificate, report: Buffer, signingKey: 'vcek' | 'vlek'): { productName: string } | AttestationReason {
  const extensions = certificateExtensions(key.raw);
  if ('error' in extensions) return { code: 'malformed', message: `the ${signingKey.toUpperCase()} certificate: ${extensions.error}` };
  const productName = productNameOf(extensions);
  const line = productName?.split('-')[0]?.toLowerCase();
  if (productName === undefined || (line !== 'milan' && line !== 'genoa' && line !== 'turin')) {
    return { code: 'malformed', message: `the ${signingKey.toUpperCase()} certificate names no known product line (${productName ?? 'none'})` };
  }
  const hwIdExtension = extensions.get(OID.hwId);
  if (signingKey === 'vcek') {
    if (hwIdExtension === undefined || extensions.has(OID.cspId)) return { code: 'malformed', message: 'the report is VCEK-signed but the certificate is not a VCEK (no hwID)' };
    const length = HWID_LENGTH[line];
    const hwId = hwIdOf(hwIdExtension.value, length);
    if (hwId === undefined) return { code: 'malformed', message: `the VCEK hwID is not ${length} bytes` };
    if (!Buffer.from(hwId).equals(report.subarray(CHIP_ID, CHIP_ID + length))) {
      return { code: 'chip-mismatch', message: "the report's CHIP_ID is not the chip the VCEK was issued to" };
    }
  } else if (hwIdExtension !== undefined) {
    return { code: 'malformed', message: 'the report is VLEK-signed but the certificate is a VCEK (it has a hwID)' };
  }
  for (const [name, oid, byte] of TCB_LAYOUT[line]) {
    const spl = splOf(extensions, oid);
    if (spl === undefined) return { code: 'malformed', message: `the certificate has no valid ${name} SPL extension (${oid})` };
    const reported = report[REPORTED_TCB + byte] as number;
    if (spl !== reported) {
      return { code: 'tcb-mismatch', message: `REPORTED_TCB says ${name} SPL ${reported}, the certificate was issued for ${spl}` };
    }
  }
  return { productName };
}

export function verifySevSnpReport(report: Uint8Array, at: Date, trust: SevSnpTrust): Verified<SevSnpClaims> {
  const parsed = parseSevSnpReport(report);
  if ('error' in parsed) return refuse('malformed', parsed.error);
  if (parsed.signatureAlgorithm !== 1) return refuse('unsupported-algorithm', `signature algorithm ${parsed.signatureAlgorithm} is not ECDSA P-384 (1)`);
  if (trust.certificates.length > MAX_CERTIFICATES) return refuse('malformed', `more than ${MAX_CERTIFICATES} certificates`);
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
  const vcek = chain[2] as X509Certificate;
  const endorsement = checkEndorsementKey(vcek, Buffer.from(report), parsed.signingKey);
  if ('code' in endorsement) return { ok: false, reasons: [endorsement] };
  const signature = p1363Signature(Buffer.from(report));
  if (signature === undefined) return refuse('malformed', 'the signature components do not fit P-384');
  let valid = false;
  try {
    valid = verifySignature('sha384', report.subarray(0, SIGNED_END), { key: vcek.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    valid = false;
  }
  if (!valid) return refuse('bad-signature', 'the report signature does not verify under the VCEK');
  return { ok: true, claims: { ...parsed, productName: endorsement.productName } };
}
