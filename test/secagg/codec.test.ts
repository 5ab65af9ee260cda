import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from '../../src/secagg/index.js';
import { playRound, makeParams, makeParties, randomInputs, startSimulation } from './helpers.js';
import { partyRespond, serverAccept } from '../../src/secagg/index.js';

// Every message of a run survives decode then encode byte for byte (one encoding per message).

describe('secagg wire encoding', () => {
  it('round-trips every message of a run exactly', () => {
    const parties = makeParties(4);
    const params = makeParams(parties, { threshold: 3, vectorLength: 5 });
    const sim = startSimulation(parties, params, randomInputs(4, 5));
    const seen = new Set<string>();
    const check = (bytes: Uint8Array): void => {
      const message = decodeMessage(bytes);
      seen.add(message.kind);
      expect(encodeMessage(message)).toEqual(bytes);
    };
    playRound(sim, 0);
    for (let round = 1; round <= 4; round += 1) {
      for (const o of sim.outbox) {
        check(o.message);
        const step = partyRespond(sim.states.get(o.to)!, o.message);
        check(step.message);
        sim.states.set(o.to, step.state);
        sim.server = serverAccept(sim.server, step.message);
      }
      playRound(sim, round, new Set(parties.map((p) => p.id)));
    }
    expect([...seen].sort()).toEqual(['advertised', 'consistency', 'masked-input', 'share-keys', 'shares', 'survivors', 'unmask', 'unmask-request']);
  });

  it('refuses bytes that are not a secagg message', () => {
    expect(() => decodeMessage(new Uint8Array(0))).toThrow(/malformed/);
    expect(() => decodeMessage(new TextEncoder().encode('{"kind":"advertise"}'))).toThrow(/malformed/);
  });
});
