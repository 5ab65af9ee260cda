import { join } from 'node:path';
import { agreementHash, assertAgreement, signAgreement } from '../agreement/index.js';
import { createClient, getLogEntries, proposeCollaboration, signCollaboration, type RunView } from '../client/index.js';
import { MalusError } from '../errors/index.js';
import { generatePartyKeys, type PartyKeys } from '../identity/index.js';
import { joinSecAggRun, readPsiInput, receivePsi, sendPsi, startSecAggRun, type SecAggProgress } from '../joint/index.js';
import { createPsiPool } from '../psi/index.js';
import type { DemoContext } from './context.js';
import { need } from './narration.js';
import type { Step } from './scenario.js';
import { KNOWN_OVERLAP } from './synthetic.js';

// Computations on cryptography alone: the two providers count their shared customers with a private
// set intersection through the relay, and compare the exact answer with the enclave's noisy one;
// then three hospitals of another collaboration add up their counts, one dropping out halfway.

const count = (n: number): string => n.toLocaleString('en-US');

export const providersRunPsi: Step<DemoContext> = {
  title: 'Without an enclave: the two providers count their shared customers with PSI',
  why:
    'Some parties trust no hardware vendor. For the overlap, the agreement allows a private set intersection ' +
    '(customer_overlap): the advertiser hashes its e-mail hashes to ristretto255 points and blinds them, the publisher ' +
    'blinds them again and sends its own set blinded and shuffled, and the advertiser learns how many are shared, and nothing ' +
    'else; the publisher learns only the size of the advertiser\u2019s set. The messages pass through the Malus relay, signed ' +
    'end to end; the log records the sizes, never an element or the answer.',
  run: async (ctx, n) => {
    const clients = need(ctx.clients, 'the clients');
    const agreement = need(ctx.agreement, 'the agreement');
    const computation = need(agreement.psi?.[0], 'the PSI of the agreement');
    const home = (party: string, file: string): string => join(ctx.dataDir, 'parties', party, file);
    // Each side reads its own original file, through the agreement's normalizers (trim, lower-case).
    const [buyers, viewers] = await Promise.all([
      readPsiInput({ input: home('advertiser', 'conversions.csv'), column: 'email_hash', normalize: computation.normalize ?? [] }),
      readPsiInput({ input: home('publisher', 'impressions.csv'), column: 'email_hash', normalize: computation.normalize ?? [] }),
    ]);
    const pool = await createPsiPool();
    const started = performance.now();
    try {
      const common = { collaborationId: agreement.id, computation: computation.name, executor: pool, intervalMs: 50, timeoutMs: 120_000 };
      const [received, sent] = await Promise.all([
        receivePsi({ ...common, client: clients.advertiser, mode: 'cardinality', items: buyers.items, setEncoding: 'gcs' }),
        sendPsi({ ...common, client: clients.publisher, items: viewers.items }),
      ]);
      const seconds = (performance.now() - started) / 1000;
      const { result, run } = received;
      if (result.mode !== 'cardinality' || result.size !== KNOWN_OVERLAP) {
        throw new MalusError('internal', `the PSI found ${result.size} shared customers, the demo built ${KNOWN_OVERLAP}`);
      }
      const elements = result.receiverCount + result.senderCount;
      n.say(
        `run ${run.id}: the advertiser brought ${count(result.receiverCount)} distinct e-mail hashes (from ${count(buyers.rows)} orders), ` +
          `the publisher ${count(result.senderCount)} (from ${count(viewers.rows)} views)`,
      );
      n.say(
        `${seconds.toFixed(1)} s for both sides on this machine (${count(Math.round(elements / seconds))} elements/s); ` +
          `${(result.bytes.total / 1e6).toFixed(1)} MB relayed, ${(result.bytes.total / elements).toFixed(0)} bytes an element with the Golomb-compressed set ` +
          `(false-positive bound ${result.falsePositiveRate.toExponential(1)})`,
      );
      n.say(`the advertiser learns: ${count(result.size)} shared customers, exactly`);
      n.say(`the publisher learns: the advertiser brought ${count(sent.receiverCount)}`);
      const enclave = ctx.enclaveOverlap;
      if (enclave !== undefined) {
        n.say(
          `the enclave's answer to the same question, under differential privacy: ${count(enclave.value)} ± ${enclave.ci95} (95%); ` +
            `the PSI's is exact but reveals it to the receiver, the enclave's spends budget and can join on more than identity`,
        );
      }
      const entries = (await getLogEntries(clients.operator, agreement.id)).map((e) => e.entry).filter((e) => e.includes(run.id));
      const finished = entries.map((e) => JSON.parse(e) as { type: string; summary?: Record<string, unknown> }).find((e) => e.type === 'run.finished');
      const keys = Object.keys(finished?.summary ?? {}).sort().join(',');
      if (keys !== 'falsePositiveRate,kind,setEncoding,setSizes') throw new MalusError('internal', `the log should record the run with its sizes only, not ${keys}`);
      n.say(`log: run.started and run.finished with ${JSON.stringify(finished?.summary?.setSizes)}: the sizes, no element and no answer`);
    } finally {
      await pool.close();
    }
  },
};

/** Readmissions within 30 days by age band (0-17, 18-29, 30-39, 40-49, 50-59, 60-69, 70-79, 80+), per hospital. */
const AGE_BANDS = ['0-17', '18-29', '30-39', '40-49', '50-59', '60-69', '70-79', '80+'] as const;
const READMISSIONS = {
  'St Mary’s Hospital': [12, 31, 44, 58, 97, 141, 188, 173],
  'Riverside Clinic': [7, 19, 26, 40, 66, 102, 131, 120],
  'Northgate Medical Centre': [3, 11, 15, 22, 38, 61, 80, 77],
} as const;

export const hospitalsAggregate: Step<DemoContext> = {
  title: 'Three hospitals add up their readmissions, and one drops out halfway',
  why:
    'Secure aggregation (Bonawitz et al.): each hospital masks its vector with pairwise masks that cancel in the sum and a ' +
    'self mask, and Shamir-shares the secrets behind them (any 2 of 3 rebuild them). The server relays masked vectors it ' +
    'cannot read; the hospital that starts the run adds them up and removes the masks. A hospital that stops after sharing ' +
    'its keys is simply left out: the others\u2019 shares remove its masks, so the sum of the rest comes out exact.',
  run: async (ctx, n) => {
    const names = Object.keys(READMISSIONS) as (keyof typeof READMISSIONS)[];
    const keys = names.map((name) => generatePartyKeys(name));
    const [first, second, third] = keys as [PartyKeys, PartyKeys, PartyKeys];
    const ids = keys.map((k) => k.identity.id);
    const agreement = assertAgreement(
      {
        format: 'malus.agreement/v1',
        id: 'hospital-readmissions',
        version: 1,
        previous: null,
        title: '30-day readmissions by age band',
        validFrom: new Date(Math.floor(ctx.now().getTime() / 1000) * 1000 - 60_000).toISOString(),
        validUntil: new Date(ctx.now().getTime() + 30 * 86_400_000).toISOString(),
        parties: keys.map(({ identity: { id, name, signingKey, encryptionKey } }) => ({ id, name, signingKey, encryptionKey, roles: ['provider', 'receiver', 'signer'] })),
        tables: [],
        receivers: ids,
        enclave: need(ctx.agreement, 'the first agreement').enclave,
        secureAggregation: [{ name: 'readmissions_by_age', parties: ids, threshold: 2, vectorLength: AGE_BANDS.length, clip: 100_000, fractionBits: 0, receivers: ids }],
      },
      'hospital agreement',
    );
    const hash = agreementHash(agreement);
    const client = (k: PartyKeys) => createClient({ server: ctx.server.url, keys: k });
    const signature = (k: PartyKeys) => signAgreement(agreement, hash, { partyId: k.identity.id, signingSecret: k.signingSecret }, ctx.now());
    await proposeCollaboration(client(first), { agreement, signature: signature(first) });
    await signCollaboration(client(second), agreement.id, signature(second));
    await signCollaboration(client(third), agreement.id, signature(third));
    n.say(`${agreement.id}: signed by all three and active; it allows readmissions_by_age (8 counts, any 2 of 3 rebuild the masks)`);

    let started!: (run: RunView) => void;
    const runStarted = new Promise<RunView>((resolve) => (started = resolve));
    const aggregation = startSecAggRun({
      client: client(first),
      collaborationId: agreement.id,
      computation: 'readmissions_by_age',
      keys: first,
      input: [...READMISSIONS['St Mary’s Hospital']],
      roundTimeoutMs: 1500,
      joinTimeoutMs: 30_000,
      intervalMs: 25,
      onStarted: started,
    });
    const run = await Promise.race([runStarted, aggregation.then(() => Promise.reject(new MalusError('internal', 'the run ended before it started')))]);
    n.say(`${first.identity.name} starts run ${run.id} and will add up; ${second.identity.name} and ${third.identity.name} join it`);
    const leaving = new AbortController();
    const join = (k: PartyKeys, input: readonly number[], extra: { signal?: AbortSignal; onProgress?: (e: SecAggProgress) => void } = {}) =>
      joinSecAggRun({ client: client(k), collaborationId: agreement.id, runId: run.id, keys: k, input: [...input], intervalMs: 25, timeoutMs: 60_000, ...extra });
    const joinSecond = join(second, READMISSIONS['Riverside Clinic']);
    const joinThird = join(third, READMISSIONS['Northgate Medical Centre'], {
      signal: leaving.signal,
      // Northgate's connection goes down right after it has shared its keys.
      onProgress: (e) => {
        if (e.event === 'sent' && e.round === 1) leaving.abort(new MalusError('server-unreachable', 'the connection dropped'));
      },
    });
    const [aggregated, joinedSecond, joinedThird] = await Promise.allSettled([aggregation, joinSecond, joinThird]);
    if (aggregated.status !== 'fulfilled' || joinedSecond.status !== 'fulfilled') {
      const reason: unknown = aggregated.status === 'rejected' ? aggregated.reason : joinedSecond.status === 'rejected' ? joinedSecond.reason : undefined;
      throw reason instanceof Error ? reason : new MalusError('internal', 'the secure aggregation failed');
    }
    if (joinedThird.status === 'fulfilled') throw new MalusError('internal', `${third.identity.name} was meant to drop out`);
    n.say(`${third.identity.name} drops out after sharing its keys (round 1), before sending its masked counts`);
    const { result } = aggregated.value;
    const expected = AGE_BANDS.map((_, i) => (READMISSIONS['St Mary’s Hospital'][i] ?? 0) + (READMISSIONS['Riverside Clinic'][i] ?? 0));
    const sum = Array.from(result.sum);
    if (sum.some((v, i) => v !== expected[i]) || result.contributors.length !== 2 || result.dropped.length !== 1) {
      throw new MalusError('internal', `the sum ${sum.join(',')} is not the two remaining hospitals' ${expected.join(',')}`);
    }
    n.say(`sum over ${result.contributors.length} hospitals (${result.dropped.length} dropped), by age band:`);
    n.say(`  ${AGE_BANDS.map((band, i) => `${band}: ${sum[i] ?? 0}`).join(', ')}`);
    n.say(`  exactly St Mary’s plus Riverside; Northgate’s counts are in no message anyone can read`);
    const secondSum = joinedSecond.value.result?.sum;
    n.say(`${second.identity.name} receives the same sum, signed by the aggregator: ${secondSum !== undefined && Array.from(secondSum).every((v, i) => v === sum[i]) ? 'yes' : 'no'}`);
    const finished = (await getLogEntries(client(first), agreement.id))
      .map((e) => JSON.parse(e.entry) as { type: string; run?: string; summary?: unknown })
      .find((e) => e.type === 'run.finished' && e.run === run.id);
    n.say(`log: run.finished ${JSON.stringify(finished?.summary)}: counts of hospitals, never a vector or the sum`);
  },
};
