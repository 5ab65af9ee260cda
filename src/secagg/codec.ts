import { equalBytes } from '../crypto/index.js';
import { PARTY_ID_PATTERN } from '../identity/index.js';
import { BOX_BYTES } from './box.js';
import { concatBytes, cursor, expectEnd, list, lp, readFixed, readList, readLp, readText, readU8, text, u8, type Cursor } from './bytes.js';
import { ELEMENT_BYTES } from './field.js';
import {
  VERSION,
  type AdvertiseKeys,
  type ConsistencyCheck,
  type PartyMessage,
  type RoundNumber,
  type SealedBox,
  type SecAggMessage,
  type ShareOf,
  type Unsigned,
} from './messages.js';
import { ID_PATTERN, MAX_PARTIES, MAX_VECTOR_LENGTH, PROTOCOL } from './params.js';
import { refusal } from './reasons.js';

// The binary wire form. A message is a domain label, the version, a kind byte, the collaboration,
// the round id, the round number, then (party messages) the sender, the body and a trailing
// 64-byte Ed25519 signature over every byte before it. Decoding is strict: one encoding per message.

const LABEL = text(`${PROTOCOL} message`);
const SIGNATURE_BYTES = 64;
const KEY_BYTES = 32;

const KINDS = {
  'advertise': { code: 1, round: 0 },
  'share-keys': { code: 2, round: 1 },
  'masked-input': { code: 3, round: 2 },
  'consistency': { code: 4, round: 3 },
  'unmask': { code: 5, round: 4 },
  'advertised': { code: 11, round: 0 },
  'shares': { code: 12, round: 1 },
  'survivors': { code: 13, round: 2 },
  'unmask-request': { code: 14, round: 3 },
} as const satisfies Record<SecAggMessage['kind'], { code: number; round: RoundNumber }>;

type Kind = keyof typeof KINDS;
const KIND_OF_CODE = new Map(Object.entries(KINDS).map(([kind, v]) => [v.code as number, kind as Kind]));

function fixed(bytes: Uint8Array, size: number, what: string): Uint8Array {
  if (bytes.length !== size) throw new RangeError(`${what} must be ${size} bytes`);
  return bytes;
}

const encodeBox = (b: SealedBox): Uint8Array => concatBytes([text(b.peer), fixed(b.box, BOX_BYTES, 'a sealed box')]);
const encodeShare = (s: ShareOf): Uint8Array => concatBytes([text(s.owner), fixed(s.y, ELEMENT_BYTES, 'a share')]);
const encodeIds = (ids: readonly string[]): Uint8Array => list(ids, text);

function header(m: Pick<SecAggMessage, 'kind' | 'collaboration' | 'roundId'>): Uint8Array {
  const kind = KINDS[m.kind];
  return concatBytes([LABEL, u8(VERSION), u8(kind.code), text(m.collaboration), text(m.roundId), u8(kind.round)]);
}

function body(m: Unsigned<PartyMessage> | SecAggMessage): Uint8Array {
  switch (m.kind) {
    case 'advertise':
      return concatBytes([fixed(m.paramsDigest, 32, 'paramsDigest'), fixed(m.cPk, KEY_BYTES, 'cPk'), fixed(m.sPk, KEY_BYTES, 'sPk')]);
    case 'share-keys':
      return concatBytes([fixed(m.keyCommitment, 32, 'keyCommitment'), fixed(m.seedCommitment, 32, 'seedCommitment'), list(m.boxes, encodeBox)]);
    case 'masked-input':
      return lp(m.masked);
    case 'consistency':
      return encodeIds(m.survivors);
    case 'unmask':
      return concatBytes([list(m.seedShares, encodeShare), list(m.keyShares, encodeShare)]);
    case 'advertised':
      return list(m.adverts, (a) => lp(encodeMessage(a)));
    case 'shares':
      return concatBytes([text(m.to), list(m.boxes, encodeBox)]);
    case 'survivors':
      return encodeIds(m.survivors);
    case 'unmask-request':
      return concatBytes([encodeIds(m.survivors), encodeIds(m.dropped), list(m.checks, (c) => concatBytes([text(c.sender), fixed(c.signature, SIGNATURE_BYTES, 'a signature')]))]);
  }
}

/** The bytes a party signs: everything in its message but the signature. */
export function signingBytes(m: Unsigned<PartyMessage> | PartyMessage): Uint8Array {
  return concatBytes([header(m), text(m.sender), body(m)]);
}

export function encodeMessage(m: SecAggMessage): Uint8Array {
  if ('sender' in m) return concatBytes([signingBytes(m), fixed(m.signature, SIGNATURE_BYTES, 'a signature')]);
  return concatBytes([header(m), body(m)]);
}

// Decoding.

function malformed(what: string): Error {
  return refusal('invalid-input', 'secagg-malformed', `malformed secagg message: ${what}`);
}

const take = (c: Cursor, size: number): Uint8Array => readFixed(c, size).slice();

function readId(c: Cursor): string {
  const id = readText(c, 20);
  if (!PARTY_ID_PATTERN.test(id)) throw malformed('a party id is not 20 lower-case hex characters');
  return id;
}

const readIds = (c: Cursor): string[] => readList(c, MAX_PARTIES, readId);
const readBox = (c: Cursor): SealedBox => ({ peer: readId(c), box: take(c, BOX_BYTES) });
const readShare = (c: Cursor): ShareOf => ({ owner: readId(c), y: take(c, ELEMENT_BYTES) });

function readAdvert(c: Cursor): AdvertiseKeys {
  const inner = decodeMessage(readLp(c, 1024));
  if (inner.kind !== 'advertise') throw malformed('expected a nested advertise message');
  return inner;
}

/** Parses one message; refuses anything that is not exactly the canonical encoding. */
export function decodeMessage(bytes: Uint8Array): SecAggMessage {
  const c = cursor(bytes);
  if (!equalBytes(readFixed(c, LABEL.length), LABEL)) throw malformed('not a secagg message');
  const version = readU8(c);
  if (version !== VERSION) throw malformed(`protocol version ${version} is not supported (expected ${VERSION})`);
  const kind = KIND_OF_CODE.get(readU8(c));
  if (kind === undefined) throw malformed('unknown message kind');
  const collaboration = readText(c, 128);
  const roundId = readText(c, 128);
  if (!ID_PATTERN.test(collaboration) || !ID_PATTERN.test(roundId)) throw malformed('bad collaboration or round id');
  const round = KINDS[kind].round;
  if (readU8(c) !== round) throw malformed(`a ${kind} message belongs to round ${round}`);
  const head = { version: VERSION, collaboration, roundId } as const;
  const message = decodeBody(c, kind, head);
  expectEnd(c);
  return message;
}

function decodeBody(c: Cursor, kind: Kind, head: { version: typeof VERSION; collaboration: string; roundId: string }): SecAggMessage {
  switch (kind) {
    case 'advertise': {
      const sender = readId(c);
      const m = { ...head, kind, round: 0, sender, paramsDigest: take(c, 32), cPk: take(c, KEY_BYTES), sPk: take(c, KEY_BYTES) } as const;
      return { ...m, signature: take(c, SIGNATURE_BYTES) } satisfies AdvertiseKeys;
    }
    case 'share-keys': {
      const sender = readId(c);
      const keyCommitment = take(c, 32);
      const seedCommitment = take(c, 32);
      const boxes = readList(c, MAX_PARTIES, readBox);
      return { ...head, kind, round: 1, sender, keyCommitment, seedCommitment, boxes, signature: take(c, SIGNATURE_BYTES) };
    }
    case 'masked-input': {
      const sender = readId(c);
      const masked = readLp(c, 4 * MAX_VECTOR_LENGTH).slice();
      if (masked.length % 4 !== 0) throw malformed('a masked vector is whole 32-bit words');
      return { ...head, kind, round: 2, sender, masked, signature: take(c, SIGNATURE_BYTES) };
    }
    case 'consistency': {
      const sender = readId(c);
      const survivors = readIds(c);
      return { ...head, kind, round: 3, sender, survivors, signature: take(c, SIGNATURE_BYTES) } satisfies ConsistencyCheck;
    }
    case 'unmask': {
      const sender = readId(c);
      const seedShares = readList(c, MAX_PARTIES, readShare);
      const keyShares = readList(c, MAX_PARTIES, readShare);
      return { ...head, kind, round: 4, sender, seedShares, keyShares, signature: take(c, SIGNATURE_BYTES) };
    }
    case 'advertised':
      return { ...head, kind, round: 0, adverts: readList(c, MAX_PARTIES, readAdvert) };
    case 'shares': {
      const to = readId(c);
      return { ...head, kind, round: 1, to, boxes: readList(c, MAX_PARTIES, readBox) };
    }
    case 'survivors':
      return { ...head, kind, round: 2, survivors: readIds(c) };
    case 'unmask-request': {
      const survivors = readIds(c);
      const dropped = readIds(c);
      const checks = readList(c, MAX_PARTIES, (r) => ({ sender: readId(r), signature: take(r, SIGNATURE_BYTES) }));
      return { ...head, kind, round: 3, survivors, dropped, checks };
    }
  }
}
