import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startServer } from '../server/index.js';
import { runScenario, textNarrator } from './scenario.js';
import { DEMO_STEPS, type DemoContext } from './steps.js';

export interface RunDemoOptions {
  /** Use this data directory instead of a temporary one. */
  readonly dataDir?: string;
  /** Keep the data directory afterwards. A given --data-dir is always kept. */
  readonly keep?: boolean;
  readonly write: (text: string) => void;
}

/** Runs the whole collaboration on one machine: a real server on a loopback port, real keys. */
export async function runDemo(options: RunDemoOptions): Promise<void> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'malus-demo-'));
  const keep = options.keep === true || options.dataDir !== undefined;
  mkdirSync(join(dataDir, 'parties'), { recursive: true, mode: 0o700 });
  mkdirSync(join(dataDir, 'logs'), { recursive: true, mode: 0o700 });
  const write = options.write;
  write('Malus demo: two organizations agree on what may be computed over their data.\n');
  write(`data directory: ${dataDir}${keep ? ' (kept)' : ' (removed at the end)'}\n`);
  const logger = pino({ level: 'info' }, pino.destination({ dest: join(dataDir, 'logs', 'server.log'), sync: true }));
  const server = await startServer({ dataDir, host: '127.0.0.1', port: 0, loggerInstance: logger });
  write(`server: ${server.url} (log in ${join(dataDir, 'logs', 'server.log')})\n`);
  const ctx: DemoContext = { dataDir, server, now: () => new Date() };
  try {
    await runScenario(DEMO_STEPS, ctx, textNarrator(write));
    write('\nDone: the agreement is active. Every step above ran against a real server over real signed HTTP.\n');
  } finally {
    await server.close();
    if (!keep) rmSync(dataDir, { recursive: true, force: true });
  }
}
