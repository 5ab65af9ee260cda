import type { FastifyBaseLogger, FastifyInstance, FastifyServerOptions } from 'fastify';
import { createSimAttester, simCaFingerprint, simPlatformAttester } from '../attestation/index.js';
import { createClient, getSimRootFingerprint, remoteAgreementSource, remoteDecisionLog, remoteJobSource } from '../client/index.js';
import { generateEncryptionKeyPair } from '../crypto/index.js';
import type { PartyKeys } from '../identity/index.js';
import { MalusError } from '../errors/index.js';
import { aesKeyWrapper, loadOrCreateMasterKey, type KeyReleaseContext } from '../keyrelease/index.js';
import { openSqliteStore, type Store } from '../store/index.js';
import { API_VERSION, baseApp } from './app.js';
import { registerAuthentication } from './auth.js';
import { keyReleaseRoutes } from './routes/key-release.js';
import { metaRoutes } from './routes/meta.js';
import { listenError, listeningUrl, prepareDatabaseFile, simPlatformOf } from './startup.js';

// `malus kms serve`: a party's own key-release service, on its own premises. Its data keys, master
// key and challenges stay in its own data directory. It reads agreements and jobs from the control
// plane as the party (and recomputes the active agreement from the signatures itself), and records
// every grant and denial in the collaboration's log through the control plane.

export interface StartKmsOptions {
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  /** The control plane (`malus serve`). */
  readonly server: string;
  /** The party running this service: it signs its requests to the control plane. */
  readonly keys: PartyKeys;
  readonly publicBaseUrl?: string;
  readonly logger?: FastifyServerOptions['logger'];
  readonly loggerInstance?: FastifyBaseLogger;
  readonly now?: () => Date;
  readonly simMeasurement?: string;
}

export interface RunningKms {
  readonly url: string;
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly simRoot: Uint8Array;
  close(): Promise<void>;
}

export async function startKmsServer(options: StartKmsOptions): Promise<RunningKms> {
  const databasePath = prepareDatabaseFile(options.dataDir, 'kms.db');
  const now = options.now ?? (() => new Date());
  const { ca: simCa, measurementBytes: measurement } = await simPlatformOf(options.dataDir, now(), options.simMeasurement);
  const control = createClient({ server: options.server, keys: options.keys });
  // Sim workers are attested by the control plane's development CA: trust it (and this service's own).
  const controlSimRoot = await getSimRootFingerprint(control);
  const store = openSqliteStore({ path: databasePath });
  let app: FastifyInstance | undefined;
  try {
    const keyRelease: KeyReleaseContext = {
      store,
      wrapper: aesKeyWrapper(loadOrCreateMasterKey(options.dataDir)),
      agreements: remoteAgreementSource(control),
      jobs: remoteJobSource(control),
      decisions: remoteDecisionLog(control),
      trust: { simRoots: [controlSimRoot, simCaFingerprint(simCa)] },
      encryption: generateEncryptionKeyPair(),
      actor: { kind: 'party', id: options.keys.identity.id },
      now,
    };
    app = await baseApp({
      title: 'Malus key-release service',
      description: `A party's own key-release service (docs/key-release.md). Requests are signed with RFC 9421, as for the Malus API.`,
      ...(options.loggerInstance === undefined ? { logger: options.logger ?? false } : { loggerInstance: options.loggerInstance }),
    });
    registerAuthentication(app, { store, now, ...(options.publicBaseUrl === undefined ? {} : { publicBaseUrl: options.publicBaseUrl }) });
    await app.register(metaRoutes(API_VERSION));
    await app.register(
      keyReleaseRoutes({
        keyRelease,
        attester: simPlatformAttester(await createSimAttester(simCa, now()), measurement, { ca: simCa }),
        simRoot: simCa.certificate,
        // Any signed caller may ask for a challenge; a release request counts (and is logged) only
        // from the worker the control plane says holds that running job, so strangers cannot
        // probe collaborations or fill their logs through this service.
        authorizeWorker: async (caller, release) => {
          if (release === undefined) return;
          const job = await keyRelease.jobs.get(release.collaborationId, release.jobId);
          if (job?.state !== 'running' || job.workerId !== caller.signingKey) {
            throw new MalusError('forbidden', 'only the worker holding a running job of this collaboration may ask for its keys');
          }
        },
      }),
    );
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await app?.close();
    await store.close();
    throw listenError(error, options);
  }
  const listening = app;
  let closing: Promise<void> | undefined;
  return {
    url: listeningUrl(listening, options),
    app: listening,
    store,
    simRoot: simCa.certificate,
    close: () => {
      closing ??= (async () => {
        await listening.close();
        await store.close();
      })();
      return closing;
    },
  };
}
