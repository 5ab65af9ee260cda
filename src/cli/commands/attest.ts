import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { EVIDENCE_FORMATS, readCertificates, sha256Fingerprint, verifyEvidence, type EvidenceFormat } from '../../attestation/index.js';
import { MalusError } from '../../errors/index.js';
import type { CliIo } from '../io.js';

function readBytes(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (error) {
    throw new MalusError('file-unreadable', `cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

interface AttestOptions {
  evidence: string;
  format: string;
  at?: string;
  root?: string;
  certChain?: string[];
  allowDebug?: boolean;
  json?: boolean;
}

export function registerAttest(program: Command, io: CliIo): void {
  const attest = program.command('attest').description('verify attestation evidence from real TEE platforms');
  attest
    .command('verify')
    .description('verify evidence (raw, hex, base64 or PEM-wrapped): exit 0 authentic and not debug, 1 not, 2 bad usage')
    .requiredOption('--evidence <file>', 'the attestation document, report or quote')
    .option('--format <format>', `auto, ${EVIDENCE_FORMATS.join(', ')}`, 'auto')
    .option('--at <time>', 'verify as of this ISO-8601 time (default: now)')
    .option('--root <file>', 'trust this root certificate (PEM or DER) instead of the pinned one')
    .option('--cert-chain <files...>', 'certificates the evidence does not carry (SEV-SNP: VCEK, ASK, ARK; NVIDIA: the device chain), PEM or DER, any order')
    .option('--allow-debug', 'accept evidence from a debug enclave')
    .option('--json', 'print one JSON object')
    .action((options: AttestOptions) => {
      if (options.format !== 'auto' && !(EVIDENCE_FORMATS as readonly string[]).includes(options.format)) {
        throw new MalusError('usage', `--format must be auto or one of ${EVIDENCE_FORMATS.join(', ')}`);
      }
      const at = options.at === undefined ? new Date() : new Date(options.at);
      if (Number.isNaN(at.getTime())) throw new MalusError('usage', `--at must be an ISO-8601 time, not ${JSON.stringify(options.at)}`);
      const roots = options.root === undefined ? undefined : readCertificates(readBytes(options.root, 'root')).map(sha256Fingerprint);
      const certificates = options.certChain?.flatMap((path) => readCertificates(readBytes(path, 'certificate chain')));
      const verdict = verifyEvidence(readBytes(options.evidence, 'evidence'), {
        format: options.format as EvidenceFormat | 'auto',
        at,
        ...(roots === undefined ? {} : { rootFingerprints: roots }),
        ...(certificates === undefined ? {} : { certificates }),
      });
      if ('error' in verdict) throw new MalusError('usage', verdict.error);
      const accepted = verdict.ok && (verdict.debug !== true || options.allowDebug === true);
      const reasons = [...verdict.reasons];
      if (verdict.ok && !accepted) reasons.push({ code: 'debug-enclave', message: 'the enclave runs in debug mode (pass --allow-debug to accept it)' });
      if (options.json === true) {
        io.out(`${JSON.stringify({ ok: accepted, platform: verdict.platform, measurement: verdict.measurement, debug: verdict.debug, reasons, claims: verdict.claims })}\n`);
      } else if (verdict.ok) {
        io.out(`${verdict.platform}: authentic${verdict.debug === true ? ' (DEBUG enclave)' : ''}\nmeasurement: ${verdict.measurement ?? '-'}\n`);
      }
      if (!accepted) {
        throw new MalusError('signature-invalid', `evidence refused: ${reasons.map((r) => `${r.code}: ${r.message}`).join('; ')}`);
      }
    });
}
