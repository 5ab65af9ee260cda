import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMalusError } from '../../src/errors/index.js';
import { STORE_SCHEMA_VERSION, openSqliteStore, type AgreementRecord, type Store } from '../../src/store/index.js';
import { migrate, type Migration } from '../../src/store/sqlite/migrations.js';
import { BUSY_TIMEOUT_MS, openSqliteDatabase } from '../../src/store/sqlite/open.js';
import { agreement, describeStoreContract, signature } from './contract.js';

const directories: string[] = [];

async function freshDirectory(): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'malus-store-'));
  directories.push(directory);
  return directory;
}

async function freshPath(): Promise<string> {
  return join(await freshDirectory(), 'malus.db');
}

// File-level afterEach runs after the suites' own afterEach hooks, so stores are closed first.
afterEach(async () => {
  await Promise.all(directories.splice(0).map((directory) => rm(directory, { recursive: true, force: true })));
});

function codeOf(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return isMalusError(error) ? error.code : error;
  }
  return 'no error';
}

async function rejectionCode(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'no error',
    (error: unknown) => (isMalusError(error) ? error.code : error),
  );
}

function raw(path: string): Database.Database {
  return new Database(path);
}

/** Inserts a record with the given members and the proposer's signature. */
function propose(store: Store, record: AgreementRecord, members: readonly string[] = ['party-alice']): Promise<void> {
  return store.collaborations.insertAgreement({
    agreement: record,
    members,
    signature: signature(record.hash, record.proposedBy),
  });
}

const MIGRATION_ROWS = 'SELECT version, applied_at FROM schema_migrations ORDER BY version';

describeStoreContract('sqlite (temp file)', async () => openSqliteStore({ path: await freshPath() }));

describeStoreContract('sqlite (:memory:)', () => openSqliteStore({ path: ':memory:' }));

describe('sqlite store', () => {
  const opened: Array<{ close(): unknown }> = [];
  let path: string;

  beforeEach(async () => {
    path = await freshPath();
  });

  afterEach(async () => {
    for (const handle of opened.splice(0).reverse()) await handle.close();
  });

  function openStore(): Store {
    const store = openSqliteStore({ path });
    opened.push(store);
    return store;
  }

  function openRaw(): Database.Database {
    const db = raw(path);
    opened.push({ close: () => db.open && db.close() });
    return db;
  }

  it('sets WAL, foreign keys, full synchronous and a busy timeout on its connection', () => {
    const db = openSqliteDatabase(path);
    opened.push({ close: () => db.close() });

    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(BUSY_TIMEOUT_MS);
  });

  it('leaves the file in WAL mode', () => {
    openStore();

    expect(openRaw().pragma('journal_mode', { simple: true })).toBe('wal');
  });

  it('records every migration once, with the time it was applied', () => {
    openStore();

    const rows = openRaw().prepare<[], { version: number; applied_at: string }>(MIGRATION_ROWS).all();
    const expected = Array.from({ length: STORE_SCHEMA_VERSION }, (_, index) => index + 1);
    expect(rows.map((row) => row.version)).toEqual(expected);
    for (const row of rows) expect(Number.isNaN(Date.parse(row.applied_at))).toBe(false);
  });

  it('keeps data across a reopen and does not re-run migrations', async () => {
    const first = openStore();
    const record = agreement('collab-1', 1);
    await propose(first, record);
    expect(await first.nonces.remember('key-1', 'nonce-1', new Date(2_000_000), new Date(1_000_000))).toBe(true);
    await first.close();
    const readMigrations = (): unknown[] => {
      const db = raw(path);
      try {
        return db.prepare(MIGRATION_ROWS).all();
      } finally {
        db.close();
      }
    };
    const before = readMigrations();

    const second = openStore();

    expect(await second.collaborations.getAgreement(record.hash)).toEqual(record);
    expect(await second.collaborations.isMember('collab-1', 'party-alice')).toBe(true);
    expect(await second.nonces.remember('key-1', 'nonce-1', new Date(2_000_000), new Date(1_500_000))).toBe(false);
    expect(readMigrations()).toEqual(before);
  });

  it('refuses a database stamped with a newer schema version, and leaves it alone', async () => {
    const store = openStore();
    await store.close();
    const stamp = raw(path);
    stamp
      .prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)')
      .run(STORE_SCHEMA_VERSION + 1, new Date().toISOString());
    stamp.close();

    expect(codeOf(() => openSqliteStore({ path }))).toBe('store-failure');
    expect(() => openSqliteStore({ path })).toThrow(/schema version/);
    const max = openRaw().prepare('SELECT max(version) FROM schema_migrations').pluck().get();
    expect(max).toBe(STORE_SCHEMA_VERSION + 1);
  });

  it('fails with store-failure when the directory does not exist', async () => {
    const missing = join(await freshDirectory(), 'no-such-directory', 'malus.db');

    expect(codeOf(() => openSqliteStore({ path: missing }))).toBe('store-failure');
  });

  it('fails with store-failure when the file is not a database', async () => {
    await writeFile(path, 'this is not sqlite, but it is long enough to have a header of sorts'.repeat(10));

    expect(codeOf(() => openSqliteStore({ path }))).toBe('store-failure');
  });

  it('rolls back the agreement and its members when the signature insert fails', async () => {
    const store = openStore();
    // A trigger on the shared file makes the last write of insertAgreement fail.
    openRaw().exec("CREATE TRIGGER fail_signature BEFORE INSERT ON signatures BEGIN SELECT RAISE(ABORT, 'boom'); END");
    const record = agreement('collab-1', 1);

    expect(await rejectionCode(propose(store, record, ['party-alice', 'party-bob']))).toBe('store-failure');
    expect(await store.collaborations.getAgreement(record.hash)).toBeUndefined();
    expect(await store.collaborations.listCollaborationIds('party-bob')).toEqual([]);
    expect(openRaw().prepare('SELECT count(*) FROM agreement_members').pluck().get()).toBe(0);
  });

  it('stores the document as canonical JSON text', async () => {
    const store = openStore();
    const record = agreement('collab-1', 1, { document: { b: [1, { d: 2, c: 3 }], a: 'x' } });
    await propose(store, record, []);

    const text = openRaw().prepare('SELECT document FROM agreements WHERE hash = ?').pluck().get(record.hash);
    expect(text).toBe('{"a":"x","b":[1,{"c":3,"d":2}]}');
  });

  it('refuses a document that is not JSON with invalid-input', async () => {
    const store = openStore();
    const record = agreement('collab-1', 1, { document: { bad: Number.POSITIVE_INFINITY } });

    expect(await rejectionCode(propose(store, record))).toBe('invalid-input');
    expect(await store.collaborations.getAgreement(record.hash)).toBeUndefined();
  });

  it('prunes expired nonces as new ones arrive', async () => {
    const store = openStore();
    const now = 1_000_000;
    for (let index = 0; index < 50; index += 1) {
      await store.nonces.remember('key-1', `old-${index}`, new Date(now + 10), new Date(now));
    }
    await store.nonces.remember('key-1', 'live', new Date(now + 10_000), new Date(now));
    const count = (): unknown => openRaw().prepare('SELECT count(*) FROM nonces').pluck().get();
    expect(count()).toBe(51);

    await store.nonces.remember('key-2', 'fresh', new Date(now + 10_000), new Date(now + 10));

    expect(count()).toBe(2);
  });

  it('sees replays and agreements across two stores on the same file', async () => {
    const one = openStore();
    const two = openStore();
    const record = agreement('collab-1', 1);

    await propose(one, record);
    expect(await rejectionCode(propose(two, record))).toBe('conflict');
    expect(await two.collaborations.getAgreement(record.hash)).toEqual(record);

    const results = await Promise.all([
      one.nonces.remember('key-1', 'shared', new Date(2_000_000), new Date(1_000_000)),
      two.nonces.remember('key-1', 'shared', new Date(2_000_000), new Date(1_000_000)),
    ]);
    expect(results.sort()).toEqual([false, true]);
  });

  it('works in memory', async () => {
    const store = openSqliteStore({ path: ':memory:' });
    opened.push(store);
    const record = agreement('collab-1', 1);
    await propose(store, record);

    expect(await store.collaborations.listVersions('collab-1')).toEqual([record]);
  });
});

describe('sqlite migrations', () => {
  let db: Database.Database;

  beforeEach(() => {
    db = new Database(':memory:');
  });

  afterEach(() => {
    db.close();
  });

  const tables = (): unknown[] =>
    db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();

  it('applies a failing migration not at all, keeping the earlier ones', () => {
    const migrations: Migration[] = [
      { version: 1, description: 'one', sql: 'CREATE TABLE one (id INTEGER) STRICT' },
      { version: 2, description: 'two', sql: 'CREATE TABLE two (id INTEGER) STRICT; CREATE TABLE broken (' },
    ];

    expect(() => {
      migrate(db, migrations);
    }).toThrow();

    expect(tables()).toEqual(['one', 'schema_migrations']);
    expect(db.prepare('SELECT version FROM schema_migrations').pluck().all()).toEqual([1]);
  });

  it('applies only the migrations above the recorded version', () => {
    const first: Migration[] = [{ version: 1, description: 'one', sql: 'CREATE TABLE one (id INTEGER) STRICT' }];
    migrate(db, first, () => new Date('2025-01-01T00:00:00Z'));
    const second: Migration[] = [
      ...first,
      { version: 2, description: 'two', sql: 'CREATE TABLE two (id INTEGER) STRICT' },
    ];
    migrate(db, second, () => new Date('2025-02-01T00:00:00Z'));

    expect(db.prepare(MIGRATION_ROWS).all()).toEqual([
      { version: 1, applied_at: '2025-01-01T00:00:00.000Z' },
      { version: 2, applied_at: '2025-02-01T00:00:00.000Z' },
    ]);
    expect(tables()).toEqual(['one', 'schema_migrations', 'two']);
  });

  it('rejects a migration list with a gap', () => {
    const migrations: Migration[] = [{ version: 2, description: 'two', sql: 'SELECT 1' }];

    expect(() => {
      migrate(db, migrations);
    }).toThrow(/expected 1/);
  });
});
