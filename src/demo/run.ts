import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { MalusError } from '../errors/index.js';
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

/**
 * A given --data-dir must be new or empty: the demo makes fresh key files and proposes the same
 * collaboration id, so a used directory would fail halfway through the story.
 */
function assertUsableDataDir(dir: string): void {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    throw new MalusError('usage', `cannot use ${dir} as the demo data directory: ${code ?? 'error'}`);
  }
  if (entries.length > 0) {
    throw new MalusError('usage', `demo data directory ${dir} is not empty; give a new or empty directory (or omit --data-dir)`);
  }
}

/** Runs the whole collaboration on one machine: a real server on a loopback port, real keys. */
export async function runDemo(options: RunDemoOptions): Promise<void> {
  if (options.dataDir !== undefined) assertUsableDataDir(options.dataDir);
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'malus-demo-'));
  const keep = options.keep === true || options.dataDir !== undefined;
  try {
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
      write(
        '\nDone: the agreement is active, only an attested enclave got the keys, and only the answers the agreement allows left it, ' +
          'sealed to the receiver. Every step above ran against a real server over real signed HTTP.\n',
      );
    } finally {
      await server.close();
    }
  } finally {
    // Also when the server failed to start: a temporary directory never outlives the demo.
    if (!keep) rmSync(dataDir, { recursive: true, force: true });
  }
}
