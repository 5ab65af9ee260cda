import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, submitQuery } from '../../src/client/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { DP_SQL, establishDp } from './budget-helpers.js';
import { makeParties, removeDir, tempDir, uniqueId } from './helpers.js';

// Closing `malus serve` (what SIGTERM does) while its in-process worker runs a charged query job:
// the worker finishes and reports that job before the server stops answering, so nothing is left
// running with its charge spent.

const MEASUREMENT = 'a9'.repeat(48);

let dataDir: string;
let work: string;

beforeAll(() => {
  dataDir = tempDir('malus-serve-close-');
  work = tempDir('malus-serve-close-work-');
});

afterAll(() => {
  removeDir(dataDir);
  removeDir(work);
});

describe('closing the server while its worker runs a job', () => {
  it('lets the job finish and report first, then closes', async () => {
    let server: RunningServer | undefined = await startServer({ dataDir, host: '127.0.0.1', port: 0, simMeasurement: MEASUREMENT, workerPollIntervalMs: 10 });
    const parties = makeParties('Serve close ');
    const agreement = await establishDp(server.url, parties, work, { id: uniqueId('serve-close'), measurements: [MEASUREMENT], rows: true });
    const job = await submitQuery(createClient({ server: server.url, keys: parties.advertiser }), agreement.id, { sql: DP_SQL });
    // Close as soon as the worker has claimed the job, while it runs.
    for (;;) {
      const state = (await server.store.jobs.get(job.id))?.state;
      if (state !== 'queued') {
        expect(state).toBe('running');
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await server.close();

    server = await startServer({ dataDir, host: '127.0.0.1', port: 0, simMeasurement: MEASUREMENT, worker: false });
    try {
      expect((await server.store.jobs.get(job.id))?.state).toBe('succeeded');
      const events = (await server.store.log.entriesOf([agreement.id])).map((e) => JSON.parse(new TextDecoder().decode(e.data)) as { type: string; job?: string });
      expect(events.filter((e) => e.job === job.id).map((e) => e.type)).toEqual(['job.submitted', 'privacy.charged', 'job.started', 'key.granted', 'job.finished']);
    } finally {
      await server.close();
    }
  }, 60_000);
});
