import { describe, expect, it } from 'vitest';
import { dequantize, serverLog, type SecAggResult } from '../../src/secagg/index.js';
import { makeParams, makeParties, plainQuantizedSum, randomInputs, refusal, simulate, startSimulation, type Simulation } from './helpers.js';

// Whole runs of the protocol, n parties and the relay in one process, with parties dropping out
// at different rounds. The output must equal the sum mod 2^32 of the contributors' quantized inputs.

function expectExactSum(sim: Simulation, result: SecAggResult, contributors: readonly string[]): void {
  const index = new Map(sim.parties.map((p, i) => [p.id, i]));
  const inputs = contributors.map((id) => sim.inputs[index.get(id)!]!);
  expect([...result.contributors]).toEqual([...contributors].sort());
  expect(result.quantizedSum).toEqual(plainQuantizedSum(sim.params, inputs));
  // Within quantization error of the plain float sum of the clipped inputs.
  const tolerance = contributors.length / (2 * sim.params.scale) + 1e-9;
  for (let i = 0; i < sim.params.vectorLength; i += 1) {
    const plain = inputs.reduce((s, x) => s + Math.min(sim.params.clip, Math.max(-sim.params.clip, x[i]!)), 0);
    expect(Math.abs(result.sum[i]! - plain)).toBeLessThanOrEqual(tolerance);
  }
}

describe('secure aggregation runs', () => {
  it('sums every input exactly with no dropouts', () => {
    const parties = makeParties(5);
    const params = makeParams(parties, { threshold: 3 });
    const sim = startSimulation(parties, params, randomInputs(5, params.vectorLength));
    const result = simulate(sim);
    expectExactSum(sim, result, parties.map((p) => p.id));
    expect(result.dropped).toEqual([]);
  });

  it('sums the survivors when one party drops after sharing its keys (round 2)', () => {
    const parties = makeParties(5);
    const params = makeParams(parties, { threshold: 3 });
    const sim = startSimulation(parties, params, randomInputs(5, params.vectorLength));
    const gone = parties[2]!.id;
    const result = simulate(sim, { 2: [gone] });
    expectExactSum(sim, result, parties.filter((p) => p.id !== gone).map((p) => p.id));
    expect(result.dropped).toEqual([gone]);
  });

  it('tolerates n - t dropouts spread over rounds 1, 2 and 4', () => {
    const parties = makeParties(7);
    const params = makeParams(parties, { threshold: 4 });
    const sim = startSimulation(parties, params, randomInputs(7, params.vectorLength));
    const [a, b, c] = [parties[0]!.id, parties[3]!.id, parties[6]!.id];
    const result = simulate(sim, { 1: [a], 2: [b], 4: [c] });
    // c sent its masked input before dropping, so its input is in the sum.
    expectExactSum(sim, result, parties.filter((p) => p.id !== a && p.id !== b).map((p) => p.id));
    expect(result.dropped).toEqual([b]);
  });

  it('tolerates n - t dropouts all at round 2 (the most pairwise masks to undo)', () => {
    const parties = makeParties(7);
    const params = makeParams(parties, { threshold: 4 });
    const sim = startSimulation(parties, params, randomInputs(7, params.vectorLength));
    const gone = [parties[1]!.id, parties[2]!.id, parties[5]!.id];
    const result = simulate(sim, { 2: gone });
    expectExactSum(sim, result, parties.filter((p) => !gone.includes(p.id)).map((p) => p.id));
    expect([...result.dropped]).toEqual([...gone].sort());
  });

  it('fails clearly when fewer than t parties remain, at any round', () => {
    for (const round of [0, 1, 2, 3, 4]) {
      const parties = makeParties(5);
      const params = makeParams(parties, { threshold: 3 });
      const sim = startSimulation(parties, params, randomInputs(5, params.vectorLength));
      const gone = [parties[0]!.id, parties[1]!.id, parties[2]!.id];
      const r = refusal(() => simulate(sim, { [round]: gone }));
      expect(r).toMatchObject({ code: 'conflict', reason: 'secagg-too-few-parties' });
      expect(r.message).toContain('fewer than the threshold 3');
    }
  });

  it('clips inputs to the range and sums negative values through two\'s complement', () => {
    const parties = makeParties(3);
    const params = makeParams(parties, { threshold: 2, vectorLength: 3, clip: 1, scale: 100 });
    const inputs = [[-5, 0.5, 0.004], [-5, -0.25, 0.006], [10, -1, 0]];
    const sim = startSimulation(parties, params, inputs);
    const result = simulate(sim);
    expect([...new Int32Array(result.quantizedSum.buffer)]).toEqual([-100, -75, 1]);
    expect([...result.sum]).toEqual([-1, -0.75, 0.01]);
    expect([...dequantize(result.quantizedSum, 100)]).toEqual([...result.sum]);
  });

  it('logs sizes and parameters, never an element', () => {
    const parties = makeParties(4);
    const params = makeParams(parties, { threshold: 3, vectorLength: 8 });
    const sim = startSimulation(parties, params, randomInputs(4, 8));
    const result = simulate(sim, { 2: [parties[0]!.id] });
    const log = serverLog(sim.server);
    expect(log).toMatchObject({ status: 'done', parties: 4, threshold: 3, vectorLength: 8, contributors: 3, dropped: 1, modulusBits: 32 });
    expect(log.rounds.map((r) => r.accepted)).toEqual([4, 4, 3, 3, 3]);
    expect(log.rounds[2]!.bytesIn).toBeGreaterThan(3 * 4 * 8);
    // Flat counts and parameters only: far too short to hold the 8-entry sum or any masked vector.
    expect(JSON.stringify(log).length).toBeLessThan(1500);
    expect(result.contributors).toHaveLength(3);
    expect(Object.keys(log).sort()).toEqual(
      ['clip', 'collaboration', 'contributors', 'dropped', 'modulusBits', 'parties', 'protocol', 'round', 'roundId', 'rounds', 'scale', 'status', 'threshold', 'vectorLength'],
    );
  });
});
