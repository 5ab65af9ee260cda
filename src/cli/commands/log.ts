import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { z } from 'zod';
import { createClient, getCheckpoint, getLogKey, runAudit, witnessLog, type MalusClient } from '../../client/index.js';
import { fromBase64, fromHex, toBase64 } from '../../crypto/index.js';
import { MalusError } from '../../errors/index.js';
import {
  openCheckpoint,
  parseVerifierKey,
  verifyConsistency,
  verifyInclusion,
  type Checkpoint,
  type NoteVerifier,
} from '../../ledger/index.js';
import { loadKeys, type CliIo } from '../io.js';

/** A hash given on the command line: 64 hex characters or 44 base64 characters. */
export function parseHashArgument(text: string, flag: string): Uint8Array {
  const bytes = /^[0-9a-fA-F]{64}$/.test(text) ? fromHex(text.toLowerCase()) : fromBase64(text);
  if (bytes?.length !== 32) throw new MalusError('usage', `${flag} must be a SHA-256 hash in hex or base64, not ${JSON.stringify(text)}`);
  return bytes;
}

function parseProof(text: string): Uint8Array[] {
  if (text.trim() === '') return [];
  return text.split(',').map((part, i) => parseHashArgument(part.trim(), `--proof element ${i}`));
}

function parseCount(text: string, flag: string): number {
  if (!/^(?:0|[1-9]\d{0,15})$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new MalusError('usage', `${flag} must be a non-negative integer, not ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** The log's verifier key from --log-key, or from the server on first use (said so, loudly). */
export async function resolveLogVerifier(io: CliIo, client: MalusClient, logKey: string | undefined): Promise<{ verifier: NoteVerifier; key: string }> {
  let key = logKey;
  if (key === undefined) {
    key = (await getLogKey(client)).verifierKey;
    io.err(`note: trusting the log key the server announced (${key}); pin it with --log-key\n`);
  }
  const verifier = parseVerifierKey(key);
  if (verifier === undefined) throw new MalusError('usage', `--log-key is not an Ed25519 note verifier key: ${JSON.stringify(key)}`);
  return { verifier, key };
}

const witnessStateSchema = z.strictObject({
  format: z.literal('malus.witness-state/v1'),
  logKey: z.string(),
  checkpoint: z.string(),
});

function readWitnessState(path: string): z.infer<typeof witnessStateSchema> | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MalusError('file-unreadable', `cannot read witness state ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MalusError('invalid-input', `witness state ${path} is not JSON`);
  }
  const parsed = witnessStateSchema.safeParse(json);
  if (!parsed.success) throw new MalusError('invalid-input', `${path} is not a malus.witness-state/v1 file`);
  return parsed.data;
}

/** Replaces the state file atomically: a crash leaves the old state or the new, never half of one. */
function writeWitnessState(path: string, state: z.infer<typeof witnessStateSchema>): void {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(temp, path);
}

function describeCheckpoint(c: Checkpoint): string {
  return `${c.origin} size ${c.size} root ${toBase64(c.root)}`;
}

/** Evidence of a fork: both checkpoints, printed in full, and exit 1. */
function forkEvidence(io: CliIo, why: string, seen: string, now: string): MalusError {
  io.out(`FORK EVIDENCE: ${why}\n\n--- checkpoint this witness cosigned before ---\n${seen}\n--- checkpoint the server shows now ---\n${now}\n`);
  return new MalusError('signature-invalid', `the log is inconsistent with a checkpoint this witness saw: ${why}`);
}

export function registerLog(program: Command, io: CliIo): void {
  const log = program.command('log').description('read, verify, witness and audit the transparency log');

  log
    .command('checkpoint')
    .description('print the current signed checkpoint with its cosignatures')
    .requiredOption('--server <url>', 'the Malus server')
    .option('--log-key <vkey>', 'verify it under this log key (note verifier key)')
    .action(async (options: { server: string; logKey?: string }) => {
      const client = createClient({ server: options.server });
      const note = await getCheckpoint(client);
      if (options.logKey !== undefined) {
        const { verifier } = await resolveLogVerifier(io, client, options.logKey);
        const opened = openCheckpoint(note, verifier, verifier.name);
        if (!opened.ok) {
          io.out(note);
          throw new MalusError('signature-invalid', `checkpoint does not verify: ${opened.reason}`);
        }
      }
      io.out(note);
    });

  log
    .command('verify-inclusion')
    .description('verify an RFC 9162 inclusion proof offline (exit 0 valid, 1 invalid)')
    .requiredOption('--index <i>', 'leaf index')
    .requiredOption('--size <n>', 'tree size')
    .requiredOption('--leaf-hash <hash>', 'leaf hash (hex or base64)')
    .requiredOption('--root <hash>', 'root hash at that size')
    .requiredOption('--proof <hashes>', 'comma-separated proof hashes, leaf to root ("" for none)')
    .action((options: { index: string; size: string; leafHash: string; root: string; proof: string }) => {
      const result = verifyInclusion({
        index: parseCount(options.index, '--index'),
        size: parseCount(options.size, '--size'),
        leafHash: parseHashArgument(options.leafHash, '--leaf-hash'),
        root: parseHashArgument(options.root, '--root'),
        proof: parseProof(options.proof),
      });
      if (!result.ok) throw new MalusError('signature-invalid', `inclusion proof is invalid (${result.reason}): ${result.detail}`);
      io.out('inclusion proof is valid\n');
    });

  log
    .command('verify-consistency')
    .description('verify an RFC 9162 consistency proof offline (exit 0 valid, 1 invalid)')
    .requiredOption('--size1 <a>', 'older tree size')
    .requiredOption('--size2 <b>', 'newer tree size')
    .requiredOption('--root1 <hash>', 'root at size1 (hex or base64)')
    .requiredOption('--root2 <hash>', 'root at size2 (hex or base64)')
    .requiredOption('--proof <hashes>', 'comma-separated proof hashes ("" for none)')
    .action((options: { size1: string; size2: string; root1: string; root2: string; proof: string }) => {
      const result = verifyConsistency({
        size1: parseCount(options.size1, '--size1'),
        size2: parseCount(options.size2, '--size2'),
        root1: parseHashArgument(options.root1, '--root1'),
        root2: parseHashArgument(options.root2, '--root2'),
        proof: parseProof(options.proof),
      });
      if (!result.ok) throw new MalusError('signature-invalid', `consistency proof is invalid (${result.reason}): ${result.detail}`);
      io.out('consistency proof is valid\n');
    });

  log
    .command('witness')
    .description('check the newest checkpoint is consistent with the last one you cosigned, then cosign it')
    .requiredOption('--server <url>', 'the Malus server')
    .requiredOption('--key <keyfile>', 'your party key file (the witness key)')
    .option('--passphrase-env <var>', 'environment variable holding the key file passphrase')
    .option('--state <file>', 'where to keep the last cosigned checkpoint (default: KEYFILE.witness.json)')
    .option('--log-key <vkey>', "the log's note verifier key (default: the state file's, or the server's on first use)")
    .action(async (options: { server: string; key: string; passphraseEnv?: string; state?: string; logKey?: string }) => {
      const keys = loadKeys(io, options.key, options.passphraseEnv);
      const client = createClient({ server: options.server, keys });
      const statePath = options.state ?? `${options.key}.witness.json`;
      const state = readWitnessState(statePath);
      if (state !== undefined && options.logKey !== undefined && options.logKey !== state.logKey) {
        throw new MalusError('usage', `--log-key differs from the key in ${statePath} (${state.logKey})`);
      }
      const { verifier, key } = await resolveLogVerifier(io, client, options.logKey ?? state?.logKey);
      const outcome = await witnessLog(client, {
        keys,
        log: verifier,
        ...(state === undefined ? {} : { lastCosigned: state.checkpoint }),
        now: Math.floor(Date.now() / 1000),
      });
      if (!outcome.ok) throw forkEvidence(io, outcome.reason, outcome.seen, outcome.shown);
      writeWitnessState(statePath, { format: 'malus.witness-state/v1', logKey: key, checkpoint: outcome.note });
      io.out(`${outcome.added ? 'cosigned' : 'already cosigned'}: ${describeCheckpoint(outcome.checkpoint)} as ${outcome.witness}\n`);
    });

  log
    .command('audit')
    .description('download what you may see, recompute the tree, check every checkpoint and cosignature (exit 1 on any inconsistency)')
    .requiredOption('--server <url>', 'the Malus server')
    .requiredOption('--key <keyfile>', 'your party key file')
    .option('--passphrase-env <var>', 'environment variable holding the key file passphrase')
    .option('--log-key <vkey>', "the log's note verifier key (default: the server's, on first use)")
    .option('--json', 'print the report as JSON')
    .action(async (options: { server: string; key: string; passphraseEnv?: string; logKey?: string; json?: boolean }) => {
      const client = createClient({ server: options.server, keys: loadKeys(io, options.key, options.passphraseEnv) });
      const { verifier } = await resolveLogVerifier(io, client, options.logKey);
      const report = await runAudit(client, verifier);
      if (options.json === true) io.out(`${JSON.stringify(report, null, 2)}\n`);
      else io.out(report.text);
      if (report.problems.length > 0) throw new MalusError('signature-invalid', `audit found ${report.problems.length} problem(s)`);
    });
}

