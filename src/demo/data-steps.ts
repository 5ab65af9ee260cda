import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { listDatasets, uploadDataset } from '../client/index.js';
import { MalusError } from '../errors/index.js';
import { DATASET_FILES, deriveJoinKey, joinKeyCommitment, openOwnerDataKey, prepareDataset, sealedDataKeySchema } from '../ingest/index.js';
import type { DemoContext } from './context.js';
import { need, short } from './narration.js';
import type { Step } from './scenario.js';
import { BUYERS, CAMPAIGNS, KNOWN_OVERLAP, VIEWERS, emailHash, writeConversions, writeImpressions } from './synthetic.js';

// Data in: the providers agree on a join secret, prepare their tables on their own machines (check,
// normalize, pseudonymize, encrypt), upload them after checking the clean room's attestation, and
// the demo looks at what the server now holds.

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

export const providersAgreeJoinSecret: Step<DemoContext> = {
  title: 'The two providers agree on a join secret the operator never sees',
  why:
    'Join columns leave a provider only as HMAC-SHA256 pseudonyms under a key derived from a secret the providers share. ' +
    'Equal e-mail hashes stay equal across the two tables, but the operator, without the secret, cannot test a guess. ' +
    'The agreement records only a commitment to the derived key, so a provider holding another secret is stopped early.',
  run: async (ctx, n) => {
    // In a real collaboration one provider runs `malus dataset join-secret` and hands the secret to
    // the other over a channel they both trust; here both live in one process.
    const secret = randomBytes(32);
    const collaboration = 'campaign-measurement';
    ctx.joinSecret = secret;
    ctx.joinKeyCommitment = joinKeyCommitment(deriveJoinKey(secret, collaboration), collaboration);
    n.say(`join-key commitment for ${collaboration}: ${ctx.joinKeyCommitment}`);
    await Promise.resolve();
  },
};

export const providersPrepareTables: Step<DemoContext> = {
  title: 'Each provider prepares its table on its own machine',
  why:
    'malus dataset prepare reads the rows with DuckDB, checks every column, type and identity against the agreement, ' +
    'normalizes the join keys (here: trim and lower-case, as the agreement says), replaces them by pseudonyms and encrypts ' +
    'the result in 1 MiB AES-256-GCM chunks bound to the collaboration, agreement, table and schema, under a fresh data key. ' +
    'The owner signs a manifest with the ciphertext hash. No plaintext is written anywhere but the input itself.',
  run: async (ctx, n) => {
    const parties = need(ctx.parties, 'the identities');
    const agreement = need(ctx.agreement, 'the agreement');
    const secret = need(ctx.joinSecret, 'the join secret');
    const prepared: Record<string, string> = {};
    for (const [keys, table, dataset, write, what] of [
      [parties.publisher, 'impressions', 'impressions-2026-11', writeImpressions, `ad impressions of ${(VIEWERS + 1).toLocaleString('en-US')} viewers`],
      [parties.advertiser, 'conversions', 'conversions-2026-11', writeConversions, `purchases of ${BUYERS.toLocaleString('en-US')} buyers, e-mail hashes in upper case`],
    ] as const) {
      const home = join(ctx.dataDir, 'parties', table === 'impressions' ? 'publisher' : 'advertiser');
      mkdirSync(home, { recursive: true, mode: 0o700 });
      const input = join(home, `${table}.csv`);
      await write(input);
      const started = performance.now();
      const result = await prepareDataset({ agreement, agreementHash: need(ctx.hash, 'the hash'), table, input, keys, out: join(home, dataset), dataset, joinSecret: secret });
      const m = result.signed.manifest;
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      n.say(`${keys.identity.name}: ${m.rows.toLocaleString('en-US')} rows (${what}), ${mb(statSync(input).size)} CSV -> ${mb(m.ciphertext.bytes)} ciphertext in ${seconds} s`);
      prepared[dataset] = result.dir;
    }
    n.say(`${KNOWN_OVERLAP.toLocaleString('en-US')} people are in both tables (known to the demo, not to the server)`);
    ctx.prepared = prepared;
  },
};

export const providersUploadDatasets: Step<DemoContext> = {
  title: "Each provider uploads its dataset, after checking the clean room's attestation",
  why:
    'Before anything leaves, the uploader verifies the key-release service\'s evidence against the agreement, then registers ' +
    'the data key sealed (HPKE) to the attested key. The ciphertext goes up in pieces and resumes where it stopped; the server ' +
    'checks the owner\'s signature and role, the table, and the ciphertext hash, and makes the dataset visible only once complete.',
  run: async (ctx, n) => {
    const clients = need(ctx.clients, 'the clients');
    const parties = need(ctx.parties, 'the identities');
    const agreement = need(ctx.agreement, 'the agreement');
    const prepared = need(ctx.prepared, 'the prepared datasets');
    const dataKeys: Record<string, Uint8Array> = {};
    for (const [client, keys, dataset] of [
      [clients.publisher, parties.publisher, 'impressions-2026-11'],
      [clients.advertiser, parties.advertiser, 'conversions-2026-11'],
    ] as const) {
      const dir = need(prepared[dataset], dataset);
      let pieces = 0;
      const view = await uploadDataset(client, { dir, agreement, onProgress: () => (pieces += 1) });
      n.say(`${keys.identity.name}: ${dataset} uploaded (${mb(view.bytes)} in ${Math.max(pieces - 1, 1)} ${pieces - 1 > 1 ? 'pieces' : 'piece'}), key registered: ${view.keyRegistered ? 'yes' : 'no'}`);
      // The owner keeps its key sealed to itself; the demo opens it to compare with the enclave's commitment later.
      const sealed = sealedDataKeySchema.parse(JSON.parse(readFileSync(join(dir, DATASET_FILES.dataKey), 'utf8')));
      dataKeys[dataset] = await openOwnerDataKey(sealed, keys);
    }
    ctx.dataKeys = dataKeys;
  },
};

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(path) : [path];
  });
}

export const serverHoldsCiphertext: Step<DemoContext> = {
  title: 'What the server holds: ciphertext and hashes only',
  why:
    'Every party can list the datasets with their owners, sizes, row counts and hashes. The operator\'s disk holds the ' +
    'encrypted files and the signed manifests: the demo searches all of the server\'s files for the parties\' e-mail hashes ' +
    'and for the campaign names the agreement does not publish, and finds none.',
  run: async (ctx, n) => {
    const { publisher } = need(ctx.clients, 'the clients');
    const agreement = need(ctx.agreement, 'the agreement');
    for (const d of await listDatasets(publisher, agreement.id)) {
      n.say(`${d.dataset}: table ${d.table} of ${d.owner}, ${d.rows.toLocaleString('en-US')} rows, ${mb(d.bytes)}, ciphertext ${short(d.ciphertext.slice(7))}`);
    }
    // The campaigns a privacy policy lists as a public domain are in the agreement, which the server holds by design.
    const published = JSON.stringify(agreement.privacy?.policies ?? []);
    const secretCampaigns = CAMPAIGNS.filter((c) => !published.includes(`"${c}"`));
    const needles = [...secretCampaigns, ...[0, 1, 2, VIEWERS - 1].flatMap((i) => [emailHash(i), emailHash(i).toUpperCase()])].map((t) => Buffer.from(t));
    const serverFiles = filesUnder(ctx.dataDir).filter((f) => !relative(ctx.dataDir, f).startsWith('parties'));
    let found = 0;
    for (const file of serverFiles) {
      const bytes = readFileSync(file);
      found += needles.filter((needle) => bytes.includes(needle)).length;
    }
    n.say(`searched ${serverFiles.length} server files for ${needles.length} e-mail hashes and unpublished campaign names: ${found} found`);
    if (found > 0) throw new MalusError('internal', 'the server holds plaintext');
  },
};
