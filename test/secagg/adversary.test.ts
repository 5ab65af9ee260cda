import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '../../src/crypto/index.js';
import { partyIdFor } from '../../src/identity/index.js';
import {
  createParty,
  createServer,
  decodeMessage,
  encodeMessage,
  partyAdvertise,
  partyRespond,
  serverAccept,
  signMessage,
  type AdvertiseKeys,
  type ShareKeys,
  type UnmaskRequest,
} from '../../src/secagg/index.js';
import { ALLOWED, makeParams, makeParties, playRound, randomInputs, refusal, startSimulation, type Simulation } from './helpers.js';

// Messages the protocol must refuse: tampered, replayed, from outside the run, out of order, and
// a server that asks for what it must never get.

function setup(n = 5, t = 3): Simulation {
  const parties = makeParties(n);
  const params = makeParams(parties, { threshold: t, vectorLength: 8 });
  return startSimulation(parties, params, randomInputs(n, 8));
}

function flip(bytes: Uint8Array, index: number): Uint8Array {
  const copy = bytes.slice();
  copy[index < 0 ? copy.length + index : index]! ^= 0x01;
  return copy;
}

/** Plays rounds 0 and 1, then lets every party answer round 1's relay without delivering it. */
function maskedMessages(sim: Simulation): Map<string, Uint8Array> {
  playRound(sim, 0);
  playRound(sim, 1);
  const out = new Map<string, Uint8Array>();
  for (const o of sim.outbox) {
    const step = partyRespond(sim.states.get(o.to)!, o.message);
    sim.states.set(o.to, step.state);
    out.set(o.to, step.message);
  }
  return out;
}

describe('tampered messages', () => {
  it('refuses a masked vector with one flipped byte', () => {
    const sim = setup();
    const [id, message] = [...maskedMessages(sim)][0]!;
    // The last masked word sits just before the 64-byte signature.
    const r = refusal(() => serverAccept(sim.server, flip(message, message.length - 64 - 5)));
    expect(r).toMatchObject({ code: 'signature-invalid', reason: 'secagg-bad-signature' });
    expect(r.message).toContain(id);
  });

  it('refuses a flipped signature byte', () => {
    const sim = setup();
    const [, message] = [...maskedMessages(sim)][0]!;
    expect(refusal(() => serverAccept(sim.server, flip(message, -1)))).toMatchObject({ code: 'signature-invalid', reason: 'secagg-bad-signature' });
  });

  it('refuses trailing bytes, truncation and another protocol version', () => {
    const sim = setup();
    const advert = partyAdvertise(sim.states.get(sim.parties[0]!.id)!).message;
    const malformed = { code: 'invalid-input', reason: 'secagg-malformed' };
    expect(refusal(() => serverAccept(sim.server, Uint8Array.of(...advert, 0)))).toMatchObject(malformed);
    expect(refusal(() => serverAccept(sim.server, advert.subarray(0, advert.length - 1)))).toMatchObject(malformed);
    const versionAt = 4 + 'malus.secagg/v1 message'.length;
    expect(refusal(() => serverAccept(sim.server, flip(advert, versionAt)))).toMatchObject(malformed);
  });

  it('a party refuses a share box the server altered', () => {
    const sim = setup();
    playRound(sim, 0);
    playRound(sim, 1);
    const o = sim.outbox[0]!;
    const relay = decodeMessage(o.message);
    if (relay.kind !== 'shares') throw new Error('expected shares');
    const boxes = relay.boxes.map((b, i) => (i === 0 ? { ...b, box: flip(b.box, 3) } : b));
    const tampered = encodeMessage({ ...relay, boxes });
    expect(refusal(() => partyRespond(sim.states.get(o.to)!, tampered))).toMatchObject({ code: 'decryption-failed', reason: 'secagg-undecryptable' });
  });

  it('a party refuses a box relayed as if another party had sealed it', () => {
    const sim = setup();
    playRound(sim, 0);
    playRound(sim, 1);
    const o = sim.outbox[0]!;
    const relay = decodeMessage(o.message);
    if (relay.kind !== 'shares') throw new Error('expected shares');
    const [first, second] = relay.boxes;
    const swapped = encodeMessage({ ...relay, boxes: [{ ...first!, box: second!.box }, { ...second!, box: first!.box }, ...relay.boxes.slice(2)] });
    expect(refusal(() => partyRespond(sim.states.get(o.to)!, swapped))).toMatchObject({ reason: 'secagg-undecryptable' });
  });
});

describe('replayed messages', () => {
  it('refuses a second copy of a message in the same round', () => {
    const sim = setup();
    const step = partyAdvertise(sim.states.get(sim.parties[0]!.id)!);
    sim.server = serverAccept(sim.server, step.message);
    expect(refusal(() => serverAccept(sim.server, step.message))).toMatchObject({ code: 'conflict', reason: 'secagg-duplicate' });
  });

  it('refuses a message from a round already passed', () => {
    const sim = setup();
    const step = partyAdvertise(sim.states.get(sim.parties[0]!.id)!);
    sim.states.set(sim.parties[0]!.id, step.state);
    sim.server = serverAccept(sim.server, step.message);
    for (const p of sim.parties.slice(1)) {
      const s = partyAdvertise(sim.states.get(p.id)!);
      sim.states.set(p.id, s.state);
      sim.server = serverAccept(sim.server, s.message);
    }
    playRound(sim, 0, new Set(sim.parties.map((p) => p.id))); // everyone has advertised already: just close
    playRound(sim, 1);
    expect(refusal(() => serverAccept(sim.server, step.message))).toMatchObject({ code: 'conflict', reason: 'secagg-stale-round' });
  });

  it('a party refuses the server\'s message for a round it has passed', () => {
    const sim = setup();
    playRound(sim, 0);
    const round0 = sim.outbox[0]!;
    playRound(sim, 1);
    expect(refusal(() => partyRespond(sim.states.get(round0.to)!, round0.message))).toMatchObject({ code: 'conflict', reason: 'secagg-stale-round' });
  });

  it('refuses a message from another run of the same parties', () => {
    const sim = setup();
    const other = createParty({
      params: { ...sim.params, roundId: 'round-2' },
      allowed: ALLOWED,
      id: sim.parties[0]!.id,
      identitySecretKey: sim.parties[0]!.secretKey,
      input: sim.inputs[0]!,
    });
    const step = partyAdvertise(other);
    expect(refusal(() => serverAccept(sim.server, step.message))).toMatchObject({ code: 'conflict', reason: 'secagg-wrong-run' });
  });
});

describe('parties outside the run', () => {
  it('refuses a message signed by a party that is not in the run', () => {
    const sim = setup();
    const outsider = generateSigningKeyPair();
    const advert = decodeMessage(partyAdvertise(sim.states.get(sim.parties[0]!.id)!).message) as AdvertiseKeys;
    // signMessage replaces the signature the copied message carries.
    const forged = encodeMessage(signMessage<AdvertiseKeys>({ ...advert, sender: partyIdFor(outsider.publicKey) }, outsider.secretKey));
    expect(refusal(() => serverAccept(sim.server, forged))).toMatchObject({ code: 'signature-not-party', reason: 'secagg-unknown-party' });
  });

  it('refuses an outsider claiming a party\'s id', () => {
    const sim = setup();
    const outsider = generateSigningKeyPair();
    const advert = decodeMessage(partyAdvertise(sim.states.get(sim.parties[0]!.id)!).message) as AdvertiseKeys;
    const forged = encodeMessage(signMessage<AdvertiseKeys>(advert, outsider.secretKey));
    expect(refusal(() => serverAccept(sim.server, forged))).toMatchObject({ code: 'signature-invalid' });
  });

  it('refuses a round message from a party that skipped the round before', () => {
    const sim = setup();
    const late = sim.parties[4]!;
    playRound(sim, 0, new Set([late.id]));
    const model = decodeMessage(sim.outbox[0]!.message);
    if (model.kind !== 'advertised') throw new Error('expected adverts');
    const unsigned: Omit<ShareKeys, 'signature'> = {
      version: 1, collaboration: sim.params.collaboration, roundId: sim.params.roundId, kind: 'share-keys', round: 1, sender: late.id,
      keyCommitment: new Uint8Array(32), seedCommitment: new Uint8Array(32), boxes: [],
    };
    const message = encodeMessage(signMessage<ShareKeys>(unsigned, late.secretKey));
    expect(refusal(() => serverAccept(sim.server, message))).toMatchObject({ code: 'forbidden', reason: 'secagg-not-eligible' });
  });

  it('refuses a party that runs with other parameters', () => {
    const sim = setup();
    const p = sim.parties[0]!;
    const other = createParty({ params: { ...sim.params, scale: 1000 }, allowed: ALLOWED, id: p.id, identitySecretKey: p.secretKey, input: sim.inputs[0]! });
    expect(refusal(() => serverAccept(sim.server, partyAdvertise(other).message))).toMatchObject({ code: 'conflict', reason: 'secagg-params-mismatch' });
  });

  it('refuses a party key that is not the key of the id it claims', () => {
    const sim = setup();
    const r = refusal(() => createParty({ params: sim.params, allowed: ALLOWED, id: sim.parties[0]!.id, identitySecretKey: sim.parties[1]!.secretKey, input: sim.inputs[0]! }));
    expect(r).toMatchObject({ code: 'invalid-input', reason: 'secagg-bad-key' });
  });
});

describe('parameters the agreement does not allow', () => {
  it('refuses a run outside the allowed set, naming every field', () => {
    const parties = makeParties(4);
    const params = makeParams(parties, { threshold: 3, vectorLength: 64, clip: 8, scale: 1 << 10 });
    const allowed = { vectorLength: { min: 1, max: 32 }, threshold: { min: 4, max: 4 }, clip: { min: 0, max: 4 }, scale: { min: 1, max: 1 << 8 } };
    for (const start of [() => createServer({ params, allowed }), () => createParty({ params, allowed, id: parties[0]!.id, identitySecretKey: parties[0]!.secretKey, input: new Array<number>(64).fill(0) })]) {
      const error = (() => {
        try {
          start();
        } catch (e) {
          return e as { code: string; issues: { path: string }[] };
        }
        throw new Error('expected a refusal');
      })();
      expect(error.code).toBe('computation-not-allowed');
      expect(error.issues.map((i) => i.path)).toEqual(['vectorLength', 'threshold', 'clip', 'scale']);
    }
    expect(refusal(() => createServer({ params, allowed }))).toMatchObject({ reason: 'secagg-not-allowed' });
  });
});

describe('a server that asks for too much', () => {
  /** Runs to the unmasking request with one party dropped at round 2. */
  function atUnmasking(): { sim: Simulation; request: UnmaskRequest; to: string } {
    const sim = setup(5, 3);
    const gone = new Set([sim.parties[0]!.id]);
    playRound(sim, 0);
    playRound(sim, 1);
    playRound(sim, 2, gone);
    playRound(sim, 3);
    const o = sim.outbox[0]!;
    const request = decodeMessage(o.message);
    if (request.kind !== 'unmask-request') throw new Error('expected an unmask request');
    return { sim, request, to: o.to };
  }

  it('a party refuses to send both share kinds of one party', () => {
    const { sim, request, to } = atUnmasking();
    const greedy = encodeMessage({ ...request, dropped: [...request.dropped, request.survivors[1]!].sort() });
    const r = refusal(() => partyRespond(sim.states.get(to)!, greedy));
    expect(r).toMatchObject({ code: 'forbidden', reason: 'secagg-both-share-kinds' });
    expect(r.message).toContain(request.survivors[1]!);
  });

  it('a party refuses an unmasking request whose survivors others did not confirm', () => {
    const { sim, request, to } = atUnmasking();
    // The server shows the party a survivor list with one party fewer, hoping for its mask-key share.
    const hidden = request.survivors.find((id) => id !== to)!;
    const forged = encodeMessage({ ...request, survivors: request.survivors.filter((id) => id !== hidden), dropped: [...request.dropped, hidden].sort() });
    expect(refusal(() => partyRespond(sim.states.get(to)!, forged))).toMatchObject({ code: 'conflict', reason: 'secagg-inconsistent' });
  });

  it('a server that shows one party a shorter survivor list gets no key share from it', () => {
    const sim = setup(5, 3);
    playRound(sim, 0);
    playRound(sim, 1);
    playRound(sim, 2);
    // Every party survived; the server tells the victim that `hidden` dropped, hoping for the
    // victim's share of hidden's mask key next to the self-mask shares the others will send.
    const honest = decodeMessage(sim.outbox[0]!.message);
    if (honest.kind !== 'survivors') throw new Error('expected survivors');
    const [victim, hidden] = [honest.survivors[0]!, honest.survivors[1]!];
    const short = honest.survivors.filter((id) => id !== hidden);
    const signed = new Map<string, Uint8Array>();
    for (const o of sim.outbox) {
      const shown = o.to === victim ? encodeMessage({ ...honest, survivors: short }) : o.message;
      const step = partyRespond(sim.states.get(o.to)!, shown);
      sim.states.set(o.to, step.state);
      const check = decodeMessage(step.message);
      if (check.kind !== 'consistency') throw new Error('expected a consistency check');
      signed.set(check.sender, check.signature);
    }
    const request: UnmaskRequest = {
      version: 1, collaboration: sim.params.collaboration, roundId: sim.params.roundId, kind: 'unmask-request', round: 3,
      survivors: short, dropped: [hidden], checks: [...signed].map(([sender, signature]) => ({ sender, signature })).filter((c) => c.sender !== hidden),
    };
    const r = refusal(() => partyRespond(sim.states.get(victim)!, encodeMessage(request)));
    expect(r).toMatchObject({ code: 'conflict', reason: 'secagg-inconsistent' });
    expect(r.message).toContain('did not sign this survivor list');
  });

  it('a party refuses an unmasking request with fewer than t consistency signatures', () => {
    const { sim, request, to } = atUnmasking();
    const thin = encodeMessage({ ...request, checks: request.checks.slice(0, 2) });
    expect(refusal(() => partyRespond(sim.states.get(to)!, thin))).toMatchObject({ code: 'conflict', reason: 'secagg-too-few-parties' });
  });

  it('a party answers one unmasking request only', () => {
    const { sim, to } = atUnmasking();
    const o = sim.outbox.find((x) => x.to === to)!;
    const step = partyRespond(sim.states.get(to)!, o.message);
    expect(refusal(() => partyRespond(step.state, o.message))).toMatchObject({ code: 'conflict', reason: 'secagg-finished' });
  });
});
