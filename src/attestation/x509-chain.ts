import { X509Certificate, createHash } from 'node:crypto';
import type { AttestationReason } from './reasons.js';

// Certificate-chain checks shared by the verifiers: each certificate is issued and signed by the
// next one up, every issuer is a CA, and every certificate is valid at the verification time.

export function sha256Fingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

export function parseCertificate(der: Uint8Array, what: string): X509Certificate | AttestationReason {
  try {
    return new X509Certificate(der);
  } catch {
    return { code: 'malformed', message: `${what} is not an X.509 certificate` };
  }
}

/**
 * Checks a chain given root first, leaf last. The root itself must already be trusted by the caller
 * (pinned by fingerprint); this checks every link and validity window at `at`.
 */
export function checkChain(chain: readonly X509Certificate[], at: Date): AttestationReason | undefined {
  for (const [i, cert] of chain.entries()) {
    const name = i === 0 ? 'root certificate' : i === chain.length - 1 ? 'leaf certificate' : `intermediate certificate ${i}`;
    if (at.getTime() < Date.parse(cert.validFrom)) {
      return { code: 'certificate-not-yet-valid', message: `${name} is valid only from ${new Date(cert.validFrom).toISOString()}` };
    }
    if (at.getTime() > Date.parse(cert.validTo)) {
      return { code: 'certificate-expired', message: `${name} expired at ${new Date(cert.validTo).toISOString()}` };
    }
    const issuer = chain[i - 1] ?? cert;
    if (i > 0 && !issuer.ca) return { code: 'chain-invalid', message: `the issuer of the ${name} is not a CA` };
    if (!cert.checkIssued(issuer)) return { code: 'chain-invalid', message: `${name} was not issued by the certificate above it` };
    if (!cert.verify(issuer.publicKey)) return { code: 'chain-invalid', message: `${name} is not signed by the certificate above it` };
  }
  return undefined;
}

/** Orders certificates root (self-signed) first, then each one the previous issued; undefined if they do not form one chain. */
export function orderChain(certs: readonly X509Certificate[]): X509Certificate[] | undefined {
  const root = certs.find((c) => c.checkIssued(c));
  if (root === undefined) return undefined;
  const chain = [root];
  const rest = certs.filter((c) => c !== root);
  while (rest.length > 0) {
    const top = chain[chain.length - 1] as X509Certificate;
    const next = rest.findIndex((c) => c.checkIssued(top));
    if (next < 0) return undefined;
    chain.push(...rest.splice(next, 1));
  }
  return chain;
}

/** Splits concatenated PEM certificates into DER. */
export function pemCertificates(text: string): Uint8Array[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => {
    const body = block.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
    return new Uint8Array(Buffer.from(body, 'base64'));
  });
}
