import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isMalusError } from '../../src/errors/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { removeDir, tempDir } from './helpers.js';

// One `malus serve` per data directory: a second one, in this process or another, is refused
// before it touches the store, and the directory is free again once the first one stops, however
// it stops (a SIGKILL included: the operating system drops the lock with the process).

const SCRIPT = resolve('test/fixtures/processes/serve-source.ts');
const MEASUREMENT = 'b7'.repeat(48);
const dirs: string[] = [];
const servers: RunningServer[] = [];

afterAll(async () => {
  for (const server of servers.splice(0)) await server.close();
  for (const dir of dirs) removeDir(dir);
});

const start = (dataDir: string) => startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, simMeasurement: MEASUREMENT });

/** A server process on `dataDir`: its URL once it listens, or its exit code and stderr if it stops first. */
function serveProcess(dataDir: string): Promise<{ url?: string; code?: number | null; stderr: string; kill: () => Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, dataDir, MEASUREMENT], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => { done(code); }));
  const kill = async () => {
    child.kill('SIGKILL');
    await exited;
  };
  return new Promise((done) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const url = /listening (\S+)/.exec(chunk)?.[1];
      if (url !== undefined) done({ url, stderr, kill });
    });
    void exited.then((code) => { done({ code, stderr, kill }); });
  });
}

describe('the data directory lock', () => {
  it('refuses a second server on the same directory in this process, naming the database, and frees it on close', async () => {
    const dataDir = tempDir('malus-lock-');
    dirs.push(dataDir);
    const first = await start(dataDir);
    const refused = await start(dataDir).then(
      (server) => {
        servers.push(server);
        return undefined;
      },
      (error: unknown) => error,
    );
    expect(isMalusError(refused, 'usage'), String(refused)).toBe(true);
    expect((refused as Error).message).toBe(`${dataDir}/malus.db is in use by another malus serve: one process serves a data directory at a time`);
    // The first server is untouched by the refusal.
    expect((await fetch(`${first.url}/v1/log/checkpoint`)).status).toBe(200);
    await first.close();
    const again = await start(dataDir);
    servers.push(again);
    expect((await fetch(`${again.url}/v1/log/checkpoint`)).status).toBe(200);
  });

  it('refuses a server in another process while one runs, and lets one start after that one is killed', async () => {
    const dataDir = tempDir('malus-lock-process-');
    dirs.push(dataDir);
    const first = await start(dataDir);
    const second = await serveProcess(dataDir);
    expect(second.url).toBeUndefined();
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain('is in use by another malus serve');
    await first.close();

    const holder = await serveProcess(dataDir);
    expect(holder.url).toBeDefined();
    const refused = await start(dataDir).then(
      () => 'started',
      (error: unknown) => (isMalusError(error, 'usage') ? 'usage' : String(error)),
    );
    expect(refused).toBe('usage');
    await holder.kill();
    const after = await start(dataDir);
    servers.push(after);
    expect((await fetch(`${after.url}/v1/log/checkpoint`)).status).toBe(200);
  }, 60_000);
});
