// The messages of one run, as plain objects. Parties send signed messages (rounds 0 to 4); the
// server, a relay that holds no identity key, answers each round with an unsigned message whose
// contents the parties check themselves (they carry the parties' own signatures where it matters).

export const VERSION = 1;

/** 0 AdvertiseKeys, 1 ShareKeys, 2 MaskedInputCollection, 3 ConsistencyCheck, 4 Unmasking. */
export type RoundNumber = 0 | 1 | 2 | 3 | 4;

export const ROUND_NAMES = ['advertise-keys', 'share-keys', 'masked-input', 'consistency-check', 'unmasking'] as const;

interface Header {
  readonly version: typeof VERSION;
  readonly collaboration: string;
  readonly roundId: string;
}

interface Signed {
  readonly sender: string;
  /** Ed25519 by the sender's identity key over the message's canonical encoding (codec.ts). */
  readonly signature: Uint8Array;
}

/** Round 0, party → server: the party's two fresh X25519 public keys. */
export interface AdvertiseKeys extends Header, Signed {
  readonly kind: 'advertise';
  readonly round: 0;
  /** The digest of the parameters the party runs with: everyone must agree on them. */
  readonly paramsDigest: Uint8Array;
  /** c_pk: for sealing shares between parties. */
  readonly cPk: Uint8Array;
  /** s_pk: for the pairwise masks. */
  readonly sPk: Uint8Array;
}

export interface SealedBox {
  readonly peer: string;
  readonly box: Uint8Array;
}

/** Round 1, party → server: one sealed share pair per other party (peer = recipient). */
export interface ShareKeys extends Header, Signed {
  readonly kind: 'share-keys';
  readonly round: 1;
  /** Commitments to s_sk and b_u, so the server can tell a right reconstruction from a wrong one. */
  readonly keyCommitment: Uint8Array;
  readonly seedCommitment: Uint8Array;
  readonly boxes: readonly SealedBox[];
}

/** Round 2, party → server: the masked, quantized input, little-endian uint32 words. */
export interface MaskedInput extends Header, Signed {
  readonly kind: 'masked-input';
  readonly round: 2;
  readonly masked: Uint8Array;
}

/** Round 3, party → server: the survivor list the party saw, signed. */
export interface ConsistencyCheck extends Header, Signed {
  readonly kind: 'consistency';
  readonly round: 3;
  readonly survivors: readonly string[];
}

export interface ShareOf {
  readonly owner: string;
  /** A 33-byte field element; its x-coordinate is the sender's. */
  readonly y: Uint8Array;
}

/** Round 4, party → server: shares of b for survivors and of s_sk for dropped parties, never both. */
export interface Unmask extends Header, Signed {
  readonly kind: 'unmask';
  readonly round: 4;
  readonly seedShares: readonly ShareOf[];
  readonly keyShares: readonly ShareOf[];
}

/** Closes round 0: every advertisement the server accepted (at least t). */
export interface AdvertisedKeys extends Header {
  readonly kind: 'advertised';
  readonly round: 0;
  readonly adverts: readonly AdvertiseKeys[];
}

/** Closes round 1, one per recipient: the boxes sealed to it (peer = sender). */
export interface ForwardedShares extends Header {
  readonly kind: 'shares';
  readonly round: 1;
  readonly to: string;
  readonly boxes: readonly SealedBox[];
}

/** Closes round 2: who sent masked input (U3). */
export interface SurvivorList extends Header {
  readonly kind: 'survivors';
  readonly round: 2;
  readonly survivors: readonly string[];
}

/** A consistency check without its survivor list, which the unmasking request carries once. */
export interface CheckSignature {
  readonly sender: string;
  readonly signature: Uint8Array;
}

/** Closes round 3: the shares the server asks for, and at least t signatures over the survivor list. */
export interface UnmaskRequest extends Header {
  readonly kind: 'unmask-request';
  readonly round: 3;
  readonly survivors: readonly string[];
  readonly dropped: readonly string[];
  readonly checks: readonly CheckSignature[];
}

export type PartyMessage = AdvertiseKeys | ShareKeys | MaskedInput | ConsistencyCheck | Unmask;
export type ServerMessage = AdvertisedKeys | ForwardedShares | SurvivorList | UnmaskRequest;
export type SecAggMessage = PartyMessage | ServerMessage;

/** A party message before it is signed. */
export type Unsigned<T extends PartyMessage> = T extends unknown ? Omit<T, 'signature'> : never;
