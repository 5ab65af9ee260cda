import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agreementHash, exampleAgreement, signAgreement } from '../agreement/index.js';
import {
  createClient,
  getAgreement,
  getCollaboration,
  getLogEntries,
  getReceipt,
  proposeCollaboration,
  runAudit,
  signCollaboration,
  witnessLog,
} from '../client/index.js';
import { signingPublicKey } from '../crypto/index.js';
import { cosignatureVerifier, ed25519NoteVerifier, verifyReceipt, witnessName } from '../ledger/index.js';
import { MalusError } from '../errors/index.js';
import { generatePartyKeys, writeKeyFile, type PartyKeys } from '../identity/index.js';
import { enclaveReceivesKeys, partiesCheckTheCleanRoom, rogueWorkerDenied } from './confidential-steps.js';
import { providersAgreeJoinSecret, providersPrepareTables, providersUploadDatasets, serverHoldsCiphertext } from './data-steps.js';
import { analystRunsPrivateCount, budgetRunsOut, differencingAttack } from './dp-steps.js';
import { hospitalsAggregate, providersRunPsi } from './joint-steps.js';
import { analystAttacksDenied, analystRunsQuery, analystRunsTemplate, receiverOpensResults } from './query-steps.js';
import type { DemoContext } from './context.js';
import { need } from './narration.js';
import type { Step } from './scenario.js';

export type { DemoContext } from './context.js';

const makeIdentities: Step<DemoContext> = {
  title: 'Each organization makes its own identity',
  why:
    'A party is its keys: an Ed25519 key to sign agreements and requests, an X25519 key to receive sealed results. ' +
    'Its id is a hash of the signing key, so nobody can pose as it without the key.',
  run: async (ctx, n) => {
    const make = (name: string, file: string): PartyKeys => {
      const keys = generatePartyKeys(name);
      writeKeyFile(join(ctx.dataDir, 'parties', file), keys);
      return keys;
    };
    const parties = {
      advertiser: make('Northwind Outfitters (advertiser)', 'advertiser.key.json'),
      publisher: make('Daily Courier Media (publisher)', 'publisher.key.json'),
      operator: make('Clean Room Operator', 'operator.key.json'),
    };
    ctx.parties = parties;
    ctx.clients = {
      advertiser: createClient({ server: ctx.server.url, keys: parties.advertiser }),
      publisher: createClient({ server: ctx.server.url, keys: parties.publisher }),
      operator: createClient({ server: ctx.server.url, keys: parties.operator }),
    };
    for (const keys of Object.values(parties)) n.say(`${keys.identity.name}: party ${keys.identity.id}`);
    n.say(`key files (mode 0600) in ${join(ctx.dataDir, 'parties')}`);
    await Promise.resolve();
  },
};

const draftAgreement: Step<DemoContext> = {
  title: 'The advertiser drafts the collaboration agreement',
  why:
    'The agreement says exactly what may be computed: which tables, which columns may be joined, grouped or aggregated, ' +
    'the minimum crowd size of any output row, who receives results and which enclaves may see the data.',
  run: async (ctx, n) => {
    const parties = need(ctx.parties, 'the identities');
    const agreement = exampleAgreement(
      { advertiser: parties.advertiser.identity, publisher: parties.publisher.identity, operator: parties.operator.identity },
      // Pins the measurement of the sim enclave this server runs: the build's own.
      {
        validFrom: new Date(ctx.now().getTime() - 60_000),
        measurements: [ctx.server.simMeasurement],
        ...(ctx.joinKeyCommitment === undefined ? {} : { joinKeyCommitment: ctx.joinKeyCommitment }),
      },
    );
    ctx.agreement = agreement;
    ctx.hash = agreementHash(agreement);
    n.say(`"${agreement.title}" (${agreement.id} v${agreement.version})`);
    for (const t of agreement.tables) {
      const rule = t.analysisRule;
      const min = rule.type === 'aggregation' ? `, outputs need >= ${rule.outputConstraints[0]?.minimum ?? '?'} distinct people` : '';
      n.say(`table ${t.name}: ${t.columns.length} columns, ${rule.type} rule${min}`);
    }
    n.say(`canonical hash (RFC 8785 + SHA-256): ${ctx.hash}`);
    await Promise.resolve();
  },
};

const propose: Step<DemoContext> = {
  title: 'The advertiser proposes it to the Malus server, signed',
  why:
    'Every API request is signed (RFC 9421) with a fresh nonce, and the proposal carries the advertiser’s signature over the hash: ' +
    'the server can prove who proposed what, and cannot alter a word without breaking the signature.',
  run: async (ctx, n) => {
    const { advertiser } = need(ctx.clients, 'the clients');
    const keys = need(ctx.parties, 'the identities').advertiser;
    const agreement = need(ctx.agreement, 'the agreement');
    const signature = signAgreement(agreement, need(ctx.hash, 'the hash'), {
      partyId: keys.identity.id,
      signingSecret: keys.signingSecret,
    }, ctx.now());
    const view = await proposeCollaboration(advertiser, { agreement, signature });
    n.say(`state: ${view.state}; signed by the advertiser, waiting for: the publisher`);
  },
};

const outsiderSeesNothing: Step<DemoContext> = {
  title: 'A stranger asks to see the collaboration',
  why: 'A party not named in a collaboration is told it does not exist: not even its existence leaks.',
  run: async (ctx, n) => {
    const { operator } = need(ctx.clients, 'the clients');
    const agreement = need(ctx.agreement, 'the agreement');
    // The example names the operator as auditor, so use a stranger with its own fresh key.
    const stranger = createClient({ server: ctx.server.url, keys: generatePartyKeys('A stranger') });
    try {
      await getCollaboration(stranger, agreement.id);
      throw new MalusError('internal', 'a stranger was shown the collaboration');
    } catch (error) {
      if (!(error instanceof MalusError) || error.code !== 'not-found') throw error;
      n.say(`a stranger asking for ${agreement.id}: 404 not found`);
    }
    const asAuditor = await getCollaboration(operator, agreement.id);
    n.say(`the operator, named as auditor, may read it: state ${asAuditor.state}`);
  },
};

const publisherSigns: Step<DemoContext> = {
  title: 'The publisher reviews the agreement and signs',
  why:
    'The publisher recomputes the hash from the document itself rather than trusting the server, and signs only that hash. ' +
    'Once every party with the signer role has signed, inside the validity window, the agreement is active.',
  run: async (ctx, n) => {
    const { publisher } = need(ctx.clients, 'the clients');
    const fetched = await getAgreement(publisher, need(ctx.agreement, 'the agreement').id);
    const hash = agreementHash(fetched.agreement);
    if (hash !== ctx.hash) throw new MalusError('agreement-mismatch', 'the server returned a different agreement');
    n.say(`hash recomputed by the publisher: ${hash} (matches)`);
    const keys = need(ctx.parties, 'the identities').publisher;
    const signature = signAgreement(fetched.agreement, hash, {
      partyId: keys.identity.id,
      signingSecret: keys.signingSecret,
    }, ctx.now());
    const view = await signCollaboration(publisher, fetched.agreement.id, signature);
    n.say(`state: ${view.state}`);
  },
};

const showActive: Step<DemoContext> = {
  title: 'Anyone in the collaboration can check that it is active',
  why: 'The state is derived from the document, the signatures and the clock, so every party computes the same answer.',
  run: async (ctx, n) => {
    const { advertiser } = need(ctx.clients, 'the clients');
    const view = await getCollaboration(advertiser, need(ctx.agreement, 'the agreement').id);
    const version = view.versions[view.versions.length - 1];
    if (view.state !== 'active' || version === undefined) {
      throw new MalusError('internal', `expected the agreement to be active, it is ${view.state}`);
    }
    const names = new Map(Object.values(need(ctx.parties, 'the identities')).map((k) => [k.identity.id, k.identity.name]));
    n.say(`${view.id} v${version.version}: ${view.state}`);
    n.say(`signed by: ${version.signed.map((id) => names.get(id) ?? id).join(', ')}`);
    n.say(`valid ${version.validFrom} .. ${version.validUntil}`);
  },
};

const witnessTheLog: Step<DemoContext> = {
  title: 'Both parties witness the transparency log',
  why:
    'Every decision so far (proposed, signed, activated, keys registered, granted and denied, jobs submitted and finished) ' +
    'is an entry in an append-only Merkle log. Each party checks that the newest signed checkpoint extends the last one ' +
    'it saw and cosigns it, so the operator cannot show ' +
    'different histories to different parties or quietly drop an entry.',
  run: async (ctx, n) => {
    const { advertiser, publisher } = need(ctx.clients, 'the clients');
    const parties = need(ctx.parties, 'the identities');
    await ctx.server.log.checkpoint();
    const log = ed25519NoteVerifier(ctx.server.log.origin, ctx.server.log.publicKey);
    ctx.logVerifierKey = ctx.server.log.verifierKey;
    for (const [client, keys] of [
      [advertiser, parties.advertiser],
      [publisher, parties.publisher],
    ] as const) {
      const outcome = await witnessLog(client, { keys, log, now: Math.floor(ctx.now().getTime() / 1000) });
      if (!outcome.ok) throw new MalusError('signature-invalid', `witness found a fork: ${outcome.reason}`);
      n.say(`${keys.identity.name} cosigned checkpoint size ${outcome.checkpoint.size} as ${outcome.witness}`);
    }
    n.say(`log key: ${ctx.server.log.verifierKey}`);
  },
};

const verifyReceiptOffline: Step<DemoContext> = {
  title: 'The advertiser takes a receipt for the activation and checks it offline',
  why:
    'A receipt is the entry, a signed and cosigned checkpoint that includes it, and the inclusion proof. Anyone with ' +
    'the log key can check it without asking the server anything.',
  run: async (ctx, n) => {
    const { advertiser } = need(ctx.clients, 'the clients');
    const parties = need(ctx.parties, 'the identities');
    const agreement = need(ctx.agreement, 'the agreement');
    const entries = await getLogEntries(advertiser, agreement.id);
    const activation = entries.find((e) => e.entry.includes('"type":"agreement.activated"'));
    if (activation === undefined) throw new MalusError('internal', 'no activation entry in the log');
    const receipt = await getReceipt(advertiser, activation.index);
    const file = join(ctx.dataDir, 'activation.receipt.json');
    writeFileSync(file, `${JSON.stringify(receipt, null, 2)}\n`);
    const witnesses = [parties.advertiser, parties.publisher].map((k) =>
      cosignatureVerifier(witnessName(k.identity.id), signingPublicKey(k.signingSecret)),
    );
    const verdict = verifyReceipt(receipt, {
      log: ed25519NoteVerifier(ctx.server.log.origin, ctx.server.log.publicKey),
      witnesses,
      minCosignatures: 2,
    });
    if (!verdict.ok) throw new MalusError('signature-invalid', `receipt does not verify: ${verdict.reason}`);
    n.say(`entry ${verdict.index} (${verdict.event.type}) is in checkpoint size ${verdict.checkpoint.size}`);
    n.say(`cosigned by ${verdict.cosignedBy.length} witnesses; written to ${file}`);
    n.say(`with --keep, check it yourself: malus verify ${file} --log-key '${ctx.server.log.verifierKey}'`);
  },
};

const auditTheLog: Step<DemoContext> = {
  title: 'The publisher audits the whole log',
  why:
    'The audit rebuilds the Merkle tree from the public hash tiles, checks every checkpoint signature, cosignature and ' +
    'root against it, and checks that every decision the server reports has its entry.',
  run: async (ctx, n) => {
    const { publisher } = need(ctx.clients, 'the clients');
    const report = await runAudit(publisher, ed25519NoteVerifier(ctx.server.log.origin, ctx.server.log.publicKey));
    for (const line of report.text.trimEnd().split('\n')) n.say(line);
    if (report.problems.length > 0) throw new MalusError('signature-invalid', 'the audit found problems');
  },
};

/** The demo, in order. Later capabilities append their steps here. */
export const DEMO_STEPS: readonly Step<DemoContext>[] = [
  makeIdentities,
  providersAgreeJoinSecret,
  draftAgreement,
  propose,
  outsiderSeesNothing,
  publisherSigns,
  showActive,
  partiesCheckTheCleanRoom,
  providersPrepareTables,
  providersUploadDatasets,
  serverHoldsCiphertext,
  enclaveReceivesKeys,
  rogueWorkerDenied,
  analystRunsQuery,
  analystAttacksDenied,
  analystRunsTemplate,
  receiverOpensResults,
  analystRunsPrivateCount,
  differencingAttack,
  budgetRunsOut,
  providersRunPsi,
  hospitalsAggregate,
  witnessTheLog,
  verifyReceiptOffline,
  auditTheLog,
];
