import { randomBytes } from 'node:crypto';
import { equalBytes, signingPublicKey, toHex } from '../crypto/index.js';
import { partyIdFor } from '../identity/index.js';
import { openShares, sealShares, type SharePair } from './box.js';
import { decodeMessage, encodeMessage } from './codec.js';
import { dhShared, generateDhKeyPair, type DhKeyPair } from './dh.js';
import { decodeElement, encodeElement } from './field.js';
import { commitmentContext, pairwiseMaskKey, selfMaskKey, shareBoxKey } from './kdf.js';
import type { AdvertiseKeys, CheckSignature, ConsistencyCheck, MaskedInput, RoundNumber, ServerMessage, ShareKeys, Unmask } from './messages.js';
import { checkRun, type Run, type SecAggAllowed, type SecAggParams } from './params.js';
import { applyMask, wordsToBytes } from './prg.js';
import { quantize } from './quantize.js';
import { refusal } from './reasons.js';
import { splitSecret } from './shamir.js';
import { checkRound, checkRunOf, checkSigned, isCanonicalIdList, sameIds, signMessage } from './verify.js';

// One party's side of Bonawitz et al.: pure functions from a state and the server's last message
// to the next state and the party's answer. A party checks everything the server relays, and in
// the last round gives the server at most one kind of share for each other party.

export interface PartyOptions {
  readonly params: SecAggParams;
  readonly allowed: SecAggAllowed;
  /** This party's id and the 32-byte seed of its Ed25519 identity key. */
  readonly id: string;
  readonly identitySecretKey: Uint8Array;
  /** The party's vector: clipped and quantized now, masked in round 2. */
  readonly input: ArrayLike<number>;
}

interface Base {
  readonly run: Run;
  readonly id: string;
  readonly identitySecretKey: Uint8Array;
}

interface Peer {
  readonly cPk: Uint8Array;
  readonly sPk: Uint8Array;
}

export type PartyState =
  | (Base & { readonly step: 'start'; readonly quantized: Uint32Array })
  | (Base & { readonly step: 'advertised'; readonly quantized: Uint32Array; readonly c: DhKeyPair; readonly s: DhKeyPair })
  | (Base & {
      readonly step: 'shared';
      readonly quantized: Uint32Array;
      readonly c: DhKeyPair;
      readonly s: DhKeyPair;
      readonly seed: Uint8Array;
      readonly peers: ReadonlyMap<string, Peer>;
      /** The share pairs this party holds, its own included. */
      readonly held: ReadonlyMap<string, SharePair>;
    })
  | (Base & { readonly step: 'masked'; readonly u2: readonly string[]; readonly held: ReadonlyMap<string, SharePair> })
  | (Base & { readonly step: 'checked'; readonly u2: readonly string[]; readonly held: ReadonlyMap<string, SharePair>; readonly survivors: readonly string[] })
  | (Base & { readonly step: 'done' });

export interface PartyStep {
  readonly state: PartyState;
  /** The encoded message to send the server. */
  readonly message: Uint8Array;
}

const EXPECTED_ROUND: Record<PartyState['step'], RoundNumber | undefined> = {
  start: undefined,
  advertised: 0,
  shared: 1,
  masked: 2,
  checked: 3,
  done: undefined,
};

export function createParty(options: PartyOptions): PartyState {
  const run = checkRun(options.params, options.allowed);
  if (!run.keyOf.has(options.id)) throw refusal('signature-not-party', 'secagg-unknown-party', `${options.id} is not a party of this run`);
  if (partyIdFor(signingPublicKey(options.identitySecretKey)) !== options.id) {
    throw refusal('invalid-input', 'secagg-bad-key', `the identity key given is not the key of ${options.id}`);
  }
  const quantized = quantize(options.input, run.params);
  return { run, id: options.id, identitySecretKey: options.identitySecretKey, step: 'start', quantized };
}

function header(state: Base): { version: 1; collaboration: string; roundId: string; sender: string } {
  return { version: 1, collaboration: state.run.params.collaboration, roundId: state.run.params.roundId, sender: state.id };
}

/** Round 0: two fresh X25519 key pairs, c for sealing shares and s for the pairwise masks. */
export function partyAdvertise(state: PartyState): PartyStep {
  if (state.step !== 'start') throw refusal('conflict', 'secagg-stale-round', 'this party has already advertised its keys');
  const c = generateDhKeyPair();
  const s = generateDhKeyPair();
  const message = signMessage<AdvertiseKeys>(
    { ...header(state), kind: 'advertise', round: 0, paramsDigest: state.run.digest, cPk: c.publicKey, sPk: s.publicKey },
    state.identitySecretKey,
  );
  return { state: { ...state, step: 'advertised', c, s }, message: encodeMessage(message) };
}

/** Answers the server's message for the round this party is in. */
export function partyRespond(state: PartyState, incoming: Uint8Array): PartyStep {
  const expected = EXPECTED_ROUND[state.step];
  if (expected === undefined) {
    throw state.step === 'done'
      ? refusal('conflict', 'secagg-finished', 'this party has already sent its unmasking shares')
      : refusal('conflict', 'secagg-early', 'this party has not advertised its keys yet');
  }
  const m = decodeMessage(incoming);
  if ('sender' in m) throw refusal('invalid-input', 'secagg-malformed', 'a party expects a server message');
  checkRunOf(state.run, m);
  checkRound(expected, m);
  return answer(state, m);
}

function answer(state: PartyState, m: ServerMessage): PartyStep {
  if (state.step === 'advertised' && m.kind === 'advertised') return shareKeys(state, m.adverts);
  if (state.step === 'shared' && m.kind === 'shares') return maskInput(state, m.to, m.boxes);
  if (state.step === 'masked' && m.kind === 'survivors') return checkConsistency(state, m.survivors);
  if (state.step === 'checked' && m.kind === 'unmask-request') return unmask(state, m.survivors, m.dropped, m.checks);
  throw refusal('invalid-input', 'secagg-malformed', `a ${m.kind} message does not answer step ${state.step}`);
}

function inconsistent(message: string): Error {
  return refusal('conflict', 'secagg-inconsistent', message);
}

function tooFew(count: number, state: Base, what: string): Error {
  return refusal('conflict', 'secagg-too-few-parties', `${count} ${what}: fewer than the threshold ${state.run.params.threshold}`);
}

function dh(own: DhKeyPair, peerKey: Uint8Array, peer: string): Uint8Array {
  try {
    return dhShared(own.handle, peerKey);
  } catch (error) {
    throw refusal('invalid-input', 'secagg-bad-key', `the X25519 key ${peer} advertised is not usable: ${error instanceof Error ? error.message : 'unknown'}`);
  }
}

type Advertised = Extract<PartyState, { step: 'advertised' }>;
type Shared = Extract<PartyState, { step: 'shared' }>;
type Masked = Extract<PartyState, { step: 'masked' }>;
type Checked = Extract<PartyState, { step: 'checked' }>;

/** Round 1: check U1's signed keys, then share s_sk and a fresh seed b_u among U1, sealed per party. */
function shareKeys(state: Advertised, adverts: readonly AdvertiseKeys[]): PartyStep {
  const peers = new Map<string, Peer>();
  const keys = new Set<string>();
  for (const advert of adverts) {
    checkSigned(state.run, advert);
    if (!equalBytes(advert.paramsDigest, state.run.digest)) {
      throw refusal('conflict', 'secagg-params-mismatch', `${advert.sender} runs with other parameters`);
    }
    if (peers.has(advert.sender)) throw inconsistent(`the server relayed two advertisements from ${advert.sender}`);
    for (const key of [advert.cPk, advert.sPk]) {
      const hex = toHex(key);
      if (keys.has(hex)) throw inconsistent('two advertised keys are equal');
      keys.add(hex);
    }
    peers.set(advert.sender, { cPk: advert.cPk, sPk: advert.sPk });
  }
  const mine = peers.get(state.id);
  if (mine === undefined || !equalBytes(mine.cPk, state.c.publicKey) || !equalBytes(mine.sPk, state.s.publicKey)) {
    throw inconsistent('the relayed advertisements do not hold this party\'s own keys');
  }
  if (peers.size < state.run.params.threshold) throw tooFew(peers.size, state, 'parties advertised keys');

  const u1 = [...peers.keys()].sort();
  const xs = u1.map((id) => state.run.xOf.get(id) ?? 0);
  const seed = new Uint8Array(randomBytes(32));
  const t = state.run.params.threshold;
  const keySplit = splitSecret(state.s.secretKey, t, xs, commitmentContext(state.run, state.id, 'mask key'));
  const seedSplit = splitSecret(seed, t, xs, commitmentContext(state.run, state.id, 'self-mask seed'));
  const held = new Map<string, SharePair>();
  const boxes = u1.flatMap((peer, i) => {
    const pair = { keyShare: encodeElement(keySplit.shares[i]?.y ?? 0n), seedShare: encodeElement(seedSplit.shares[i]?.y ?? 0n) };
    if (peer === state.id) {
      held.set(peer, pair);
      return [];
    }
    const shared = dh(state.c, peers.get(peer)?.cPk ?? new Uint8Array(), peer);
    const key = shareBoxKey(state.run, shared, state.id, peer);
    return [{ peer, box: sealShares(state.run, key, state.id, peer, pair) }];
  });
  const message = signMessage<ShareKeys>(
    { ...header(state), kind: 'share-keys', round: 1, keyCommitment: keySplit.commitment, seedCommitment: seedSplit.commitment, boxes },
    state.identitySecretKey,
  );
  return { state: { ...state, step: 'shared', seed, peers, held }, message: encodeMessage(message) };
}

/** Round 2: open the shares others sent (U2), then mask the input with b_u and every s_uv. */
function maskInput(state: Shared, to: string, boxes: readonly { peer: string; box: Uint8Array }[]): PartyStep {
  if (to !== state.id) throw inconsistent(`the server relayed shares meant for ${to}`);
  const held = new Map(state.held);
  for (const { peer, box } of boxes) {
    const keys = state.peers.get(peer);
    if (keys === undefined || peer === state.id) throw inconsistent(`${peer} did not advertise keys in this run`);
    if (held.has(peer)) throw inconsistent(`the server relayed two share boxes from ${peer}`);
    const key = shareBoxKey(state.run, dh(state.c, keys.cPk, peer), peer, state.id);
    const pair = openShares(state.run, key, peer, state.id, box);
    if (decodeElement(pair.keyShare) === undefined || decodeElement(pair.seedShare) === undefined) {
      throw refusal('invalid-input', 'secagg-malformed', `the shares from ${peer} are not field elements`);
    }
    held.set(peer, pair);
  }
  const u2 = [...held.keys()].sort();
  if (u2.length < state.run.params.threshold) throw tooFew(u2.length, state, 'parties shared their keys');

  const masked = state.quantized.slice();
  applyMask(masked, selfMaskKey(state.run, state.seed, state.id), 1);
  for (const peer of u2) {
    if (peer === state.id) continue;
    const shared = dh(state.s, state.peers.get(peer)?.sPk ?? new Uint8Array(), peer);
    // The smaller id adds the pairwise mask and the larger subtracts it, so each pair cancels.
    applyMask(masked, pairwiseMaskKey(state.run, shared, state.id, peer), state.id < peer ? 1 : -1);
  }
  const message = signMessage<MaskedInput>({ ...header(state), kind: 'masked-input', round: 2, masked: wordsToBytes(masked) }, state.identitySecretKey);
  const next: Masked = { run: state.run, id: state.id, identitySecretKey: state.identitySecretKey, step: 'masked', u2, held };
  return { state: next, message: encodeMessage(message) };
}

/** Round 3: sign the survivor list (U3) the server announced, so all parties can compare views. */
function checkConsistency(state: Masked, survivors: readonly string[]): PartyStep {
  checkSurvivors(state, survivors);
  const message = signMessage<ConsistencyCheck>({ ...header(state), kind: 'consistency', round: 3, survivors }, state.identitySecretKey);
  return { state: { ...state, step: 'checked', survivors }, message: encodeMessage(message) };
}

function checkSurvivors(state: Masked, survivors: readonly string[]): void {
  if (!isCanonicalIdList(survivors)) throw inconsistent('the survivor list is not sorted and free of repeats');
  const u2 = new Set(state.u2);
  const stranger = survivors.find((id) => !u2.has(id));
  if (stranger !== undefined) throw inconsistent(`survivor ${stranger} did not share its keys with this party`);
  if (!survivors.includes(state.id)) throw inconsistent('this party sent its masked input but is not listed as a survivor');
  if (survivors.length < state.run.params.threshold) throw tooFew(survivors.length, state, 'parties sent masked input');
}

/** Round 4: shares of b for survivors and of s_sk for the dropped, after checking t signed views. */
function unmask(state: Checked, survivors: readonly string[], dropped: readonly string[], checks: readonly CheckSignature[]): PartyStep {
  const alive = new Set(survivors);
  const both = dropped.find((id) => alive.has(id));
  if (both !== undefined) {
    throw refusal('forbidden', 'secagg-both-share-kinds', `the server asked for both the self-mask share and the mask-key share of ${both}: refused`);
  }
  if (!sameIds(survivors, state.survivors)) throw inconsistent('the unmasking request names other survivors than the consistency check');
  const expectedDropped = state.u2.filter((id) => !alive.has(id));
  if (!isCanonicalIdList(dropped) || !sameIds(dropped, expectedDropped)) throw inconsistent('the dropped list is not the parties that shared keys but sent no masked input');
  const signers = new Set<string>();
  for (const { sender, signature } of checks) {
    if (!alive.has(sender) || signers.has(sender)) throw inconsistent(`an unexpected consistency check from ${sender}`);
    // Each signature must be over this very survivor list: a party that saw another list refuses.
    const check: ConsistencyCheck = { ...header(state), sender, kind: 'consistency', round: 3, survivors, signature };
    try {
      checkSigned(state.run, check);
    } catch {
      throw inconsistent(`${sender} did not sign this survivor list: the server may be showing parties different views`);
    }
    signers.add(sender);
  }
  if (signers.size < state.run.params.threshold) throw tooFew(signers.size, state, 'parties confirmed the survivor list');

  const shareOf = (owner: string, kind: keyof SharePair): { owner: string; y: Uint8Array } => {
    const pair = state.held.get(owner);
    if (pair === undefined) throw inconsistent(`this party holds no share of ${owner}`);
    return { owner, y: pair[kind] };
  };
  const message = signMessage<Unmask>(
    {
      ...header(state),
      kind: 'unmask',
      round: 4,
      seedShares: survivors.map((id) => shareOf(id, 'seedShare')),
      keyShares: dropped.map((id) => shareOf(id, 'keyShare')),
    },
    state.identitySecretKey,
  );
  // The held shares go with the state: a done party keeps no secret of anyone.
  return { state: { run: state.run, id: state.id, identitySecretKey: state.identitySecretKey, step: 'done' }, message: encodeMessage(message) };
}
