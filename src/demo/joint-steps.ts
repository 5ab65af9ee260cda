import { join } from 'node:path';
import { getLogEntries } from '../client/index.js';
import { MalusError } from '../errors/index.js';
import { readPsiInput, receivePsi, sendPsi } from '../joint/index.js';
import { createPsiPool } from '../psi/index.js';
import type { DemoContext } from './context.js';
import { need } from './narration.js';
import type { Step } from './scenario.js';
import { KNOWN_OVERLAP } from './synthetic.js';

// Computations on cryptography alone: the two providers count their shared customers with a private
// set intersection through the relay, and compare the exact answer with the enclave's noisy one.

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
