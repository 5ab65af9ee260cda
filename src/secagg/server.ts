import { encryptionPublicKey, equalBytes, isX25519PublicKey, toHex } from '../crypto/index.js';
import { decodeMessage, encodeMessage } from './codec.js';
import { dhHandle, dhShared } from './dh.js';
import { decodeElement } from './field.js';
import { commitmentContext, pairwiseMaskKey, selfMaskKey } from './kdf.js';
import type { AdvertiseKeys, ConsistencyCheck, PartyMessage, RoundNumber, ServerMessage, ShareKeys, ShareOf, Unmask } from './messages.js';
import { checkRun, type Run, type SecAggAllowed, type SecAggParams } from './params.js';
import { applyMask, bytesToWords } from './prg.js';
import { dequantize } from './quantize.js';
import { refusal } from './reasons.js';
import { combineShares, type Share } from './shamir.js';
import { checkRound, checkSigned, sameIds } from './verify.js';

// The server's side: a relay that collects each round's messages, closes the round when the
// transport says so (at least t messages), and finally removes the masks it can reconstruct. It
// sees sealed boxes and masked vectors only; everything it accepts is signed by a party of the run.

export interface ServerOptions {
  readonly params: SecAggParams;
  readonly allowed: SecAggAllowed;
}

export interface Outgoing {
  readonly to: string;
  readonly message: Uint8Array;
}

export interface SecAggResult {
  /** The dequantized sum of the contributors' clipped inputs. */
  readonly sum: Float64Array;
  /** The same sum as the exact integers mod 2^32 (read as int32 for the signed value). */
  readonly quantizedSum: Uint32Array;
  /** U3: whose inputs the sum holds. */
  readonly contributors: readonly string[];
  /** U2 \ U3: shared keys, then dropped before sending masked input. */
  readonly dropped: readonly string[];
}

export interface RoundTraffic {
  readonly accepted: number;
  readonly bytesIn: number;
  readonly messagesOut: number;
  readonly bytesOut: number;
}

export interface ServerState {
  readonly run: Run;
  readonly round: RoundNumber | 'done';
  readonly adverts: ReadonlyMap<string, AdvertiseKeys>;
  readonly shareKeys: ReadonlyMap<string, ShareKeys>;
  readonly maskedFrom: ReadonlySet<string>;
  readonly maskedSum: Uint32Array;
  readonly survivors: readonly string[];
  readonly dropped: readonly string[];
  readonly checks: ReadonlyMap<string, ConsistencyCheck>;
  readonly unmasks: ReadonlyMap<string, Unmask>;
  readonly traffic: readonly RoundTraffic[];
}

export interface ServerStep {
  readonly state: ServerState;
  readonly outbox: readonly Outgoing[];
  /** Set once round 4 closes. */
  readonly result: SecAggResult | undefined;
}

const NO_TRAFFIC: RoundTraffic = { accepted: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0 };

export function createServer(options: ServerOptions): ServerState {
  const run = checkRun(options.params, options.allowed);
  return {
    run,
    round: 0,
    adverts: new Map(),
    shareKeys: new Map(),
    maskedFrom: new Set(),
    maskedSum: new Uint32Array(run.params.vectorLength),
    survivors: [],
    dropped: [],
    checks: new Map(),
    unmasks: new Map(),
    traffic: [NO_TRAFFIC, NO_TRAFFIC, NO_TRAFFIC, NO_TRAFFIC, NO_TRAFFIC],
  };
}

/** Who may send in each round: the parties that took part in the round before. */
function eligible(state: ServerState, round: RoundNumber): ReadonlySet<string> | ReadonlyMap<string, unknown> {
  switch (round) {
    case 0:
      return state.run.keyOf;
    case 1:
      return state.adverts;
    case 2:
      return state.shareKeys;
    case 3:
      return new Set(state.survivors);
    case 4:
      return state.checks;
  }
}

function received(state: ServerState, round: RoundNumber): number {
  return [state.adverts.size, state.shareKeys.size, state.maskedFrom.size, state.checks.size, state.unmasks.size][round] ?? 0;
}

function malformed(message: string): Error {
  return refusal('invalid-input', 'secagg-malformed', message);
}

/** Checks one party message and records it; throws, leaving the state as it was, if it is refused. */
export function serverAccept(state: ServerState, bytes: Uint8Array): ServerState {
  if (state.round === 'done') throw refusal('conflict', 'secagg-finished', 'this run is finished');
  const m = decodeMessage(bytes);
  if (!('sender' in m)) throw malformed('the server expects a party message');
  checkSigned(state.run, m);
  checkRound(state.round, m);
  const round = state.round;
  if (alreadySent(state, m)) {
    throw refusal('conflict', 'secagg-duplicate', `${m.sender} already sent its ${m.kind} message: refused as a replay`);
  }
  if (!eligible(state, round).has(m.sender)) {
    throw refusal('forbidden', 'secagg-not-eligible', `${m.sender} did not take part in the round before, so it may not send a ${m.kind} message`);
  }
  const next = record(state, m);
  const traffic = state.traffic.map((t, i) => (i === round ? { ...t, accepted: t.accepted + 1, bytesIn: t.bytesIn + bytes.length } : t));
  return { ...next, traffic };
}

function alreadySent(state: ServerState, m: PartyMessage): boolean {
  switch (m.kind) {
    case 'advertise':
      return state.adverts.has(m.sender);
    case 'share-keys':
      return state.shareKeys.has(m.sender);
    case 'masked-input':
      return state.maskedFrom.has(m.sender);
    case 'consistency':
      return state.checks.has(m.sender);
    case 'unmask':
      return state.unmasks.has(m.sender);
  }
}

function record(state: ServerState, m: PartyMessage): ServerState {
  switch (m.kind) {
    case 'advertise':
      return { ...state, adverts: new Map(state.adverts).set(m.sender, checkAdvert(state, m)) };
    case 'share-keys':
      return { ...state, shareKeys: new Map(state.shareKeys).set(m.sender, checkShareKeys(state, m)) };
    case 'masked-input': {
      if (m.masked.length !== 4 * state.run.params.vectorLength) {
        throw malformed(`the masked vector from ${m.sender} has ${m.masked.length} bytes; the run expects ${4 * state.run.params.vectorLength}`);
      }
      const words = bytesToWords(m.masked);
      const sum = state.maskedSum.slice();
      for (let i = 0; i < sum.length; i += 1) sum[i] = (sum[i] ?? 0) + (words[i] ?? 0);
      return { ...state, maskedFrom: new Set(state.maskedFrom).add(m.sender), maskedSum: sum };
    }
    case 'consistency':
      if (!sameIds(m.survivors, state.survivors)) throw refusal('conflict', 'secagg-inconsistent', `${m.sender} confirms another survivor list`);
      return { ...state, checks: new Map(state.checks).set(m.sender, m) };
    case 'unmask':
      checkShareList(m.seedShares, state.survivors, m.sender, 'self-mask');
      checkShareList(m.keyShares, state.dropped, m.sender, 'mask-key');
      return { ...state, unmasks: new Map(state.unmasks).set(m.sender, m) };
  }
}

function checkAdvert(state: ServerState, m: AdvertiseKeys): AdvertiseKeys {
  if (!equalBytes(m.paramsDigest, state.run.digest)) throw refusal('conflict', 'secagg-params-mismatch', `${m.sender} runs with other parameters`);
  const seen = new Set([...state.adverts.values()].flatMap((a) => [toHex(a.cPk), toHex(a.sPk)]));
  for (const key of [m.cPk, m.sPk]) {
    if (!isX25519PublicKey(key)) throw refusal('invalid-input', 'secagg-bad-key', `${m.sender} advertised an unusable X25519 key`);
    if (seen.has(toHex(key))) throw refusal('invalid-input', 'secagg-bad-key', `${m.sender} advertised a key already advertised in this run`);
    seen.add(toHex(key));
  }
  return m;
}

function checkShareKeys(state: ServerState, m: ShareKeys): ShareKeys {
  const expected = [...state.adverts.keys()].filter((id) => id !== m.sender).sort();
  const peers = m.boxes.map((b) => b.peer).sort();
  if (!sameIds(peers, expected)) throw malformed(`${m.sender} must seal exactly one share box for each other party that advertised keys`);
  return m;
}

function checkShareList(shares: readonly ShareOf[], owners: readonly string[], sender: string, what: string): void {
  if (!sameIds(shares.map((s) => s.owner), owners)) throw malformed(`${sender} must send ${what} shares for exactly the listed parties, in order`);
  if (shares.some((s) => decodeElement(s.y) === undefined)) throw malformed(`a ${what} share from ${sender} is not a field element`);
}

function broadcast(to: readonly string[], message: ServerMessage): Outgoing[] {
  const bytes = encodeMessage(message);
  return to.map((id) => ({ to: id, message: bytes }));
}

/**
 * Closes the current round: refuses while fewer than t parties have sent (the transport may wait
 * longer or give up), else returns the next state and what to send whom. Closing round 4 unmasks.
 */
export function serverClose(state: ServerState): ServerStep {
  if (state.round === 'done') throw refusal('conflict', 'secagg-finished', 'this run is finished');
  const round = state.round;
  const count = received(state, round);
  const t = state.run.params.threshold;
  if (count < t) {
    throw refusal('conflict', 'secagg-too-few-parties', `round ${round} has ${count} messages, fewer than the threshold ${t}: the run cannot go on`);
  }
  const head = { version: 1, collaboration: state.run.params.collaboration, roundId: state.run.params.roundId } as const;
  let next: ServerState = state;
  let outbox: Outgoing[] = [];
  let result: SecAggResult | undefined;
  switch (round) {
    case 0: {
      const adverts = [...state.adverts.keys()].sort().map((id) => state.adverts.get(id)).filter((a) => a !== undefined);
      outbox = broadcast(adverts.map((a) => a.sender), { ...head, kind: 'advertised', round: 0, adverts });
      next = { ...state, round: 1 };
      break;
    }
    case 1: {
      const u2 = [...state.shareKeys.keys()].sort();
      outbox = u2.map((to) => {
        const boxes = u2.flatMap((from) => {
          const box = from === to ? undefined : state.shareKeys.get(from)?.boxes.find((b) => b.peer === to);
          return box === undefined ? [] : [{ peer: from, box: box.box }];
        });
        return { to, message: encodeMessage({ ...head, kind: 'shares', round: 1, to, boxes }) };
      });
      next = { ...state, round: 2 };
      break;
    }
    case 2: {
      const survivors = [...state.maskedFrom].sort();
      const dropped = [...state.shareKeys.keys()].filter((id) => !state.maskedFrom.has(id)).sort();
      outbox = broadcast(survivors, { ...head, kind: 'survivors', round: 2, survivors });
      next = { ...state, round: 3, survivors, dropped };
      break;
    }
    case 3: {
      const signers = [...state.checks.keys()].sort();
      const checks = signers.map((sender) => ({ sender, signature: state.checks.get(sender)?.signature ?? new Uint8Array() }));
      outbox = broadcast(signers, { ...head, kind: 'unmask-request', round: 3, survivors: state.survivors, dropped: state.dropped, checks });
      next = { ...state, round: 4 };
      break;
    }
    case 4:
      result = unmaskSum(state);
      next = { ...state, round: 'done' };
      break;
  }
  const bytesOut = outbox.reduce((sum, o) => sum + o.message.length, 0);
  const traffic = next.traffic.map((tr, i) => (i === round ? { ...tr, messagesOut: outbox.length, bytesOut } : tr));
  return { state: { ...next, traffic }, outbox, result };
}

/** Reconstructs b_u for survivors and s_sk_u for the dropped, and strips every mask they leave. */
function unmaskSum(state: ServerState): SecAggResult {
  const run = state.run;
  const t = run.params.threshold;
  const responders = [...state.unmasks.keys()].sort();
  const sharesOf = (pick: (m: Unmask) => readonly ShareOf[], index: number): Share[] =>
    responders.map((w) => ({ x: run.xOf.get(w) ?? 0, y: decodeElement(pick(state.unmasks.get(w) as Unmask)[index]?.y ?? new Uint8Array()) ?? 0n }));

  const sum = state.maskedSum.slice();
  for (const [i, u] of state.survivors.entries()) {
    const commitment = state.shareKeys.get(u)?.seedCommitment ?? new Uint8Array();
    const seed = combineShares(sharesOf((m) => m.seedShares, i), t, commitment, commitmentContext(run, u, 'self-mask seed'));
    applyMask(sum, selfMaskKey(run, seed, u), -1);
  }
  for (const [i, u] of state.dropped.entries()) {
    const commitment = state.shareKeys.get(u)?.keyCommitment ?? new Uint8Array();
    const secretKey = combineShares(sharesOf((m) => m.keyShares, i), t, commitment, commitmentContext(run, u, 'mask key'));
    const advert = state.adverts.get(u);
    if (advert === undefined || !equalBytes(encryptionPublicKey(secretKey), advert.sPk)) {
      throw refusal('invalid-input', 'secagg-bad-reconstruction', `the mask key reconstructed for ${u} is not the key it advertised`);
    }
    const handle = dhHandle(secretKey, advert.sPk);
    for (const v of state.survivors) {
      const peerKey = state.adverts.get(v)?.sPk ?? new Uint8Array();
      // Survivor v added sign(v, u)·PRG(s_uv) for the dropped u; take it away again.
      applyMask(sum, pairwiseMaskKey(run, dhShared(handle, peerKey), u, v), v < u ? -1 : 1);
    }
  }
  return { sum: dequantize(sum, run.params.scale), quantizedSum: sum, contributors: state.survivors, dropped: state.dropped };
}
