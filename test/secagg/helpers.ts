import { generateSigningKeyPair } from '../../src/crypto/index.js';
import { MalusError } from '../../src/errors/index.js';
import { partyIdFor } from '../../src/identity/index.js';
import {
  createParty,
  createServer,
  partyAdvertise,
  partyRespond,
  quantize,
  secaggReason,
  serverAccept,
  serverClose,
  type Outgoing,
  type PartyState,
  type SecAggAllowed,
  type SecAggParams,
  type SecAggResult,
  type ServerState,
} from '../../src/secagg/index.js';

export interface TestParty {
  readonly id: string;
  readonly secretKey: Uint8Array;
  readonly signingKey: Uint8Array;
}

export function makeParties(n: number): TestParty[] {
  return Array.from({ length: n }, () => {
    const keys = generateSigningKeyPair();
    return { id: partyIdFor(keys.publicKey), secretKey: keys.secretKey, signingKey: keys.publicKey };
  });
}

export const ALLOWED: SecAggAllowed = {
  vectorLength: { min: 1, max: 1 << 20 },
  threshold: { min: 2, max: 1000 },
  clip: { min: 0, max: 1000 },
  scale: { min: 1, max: 1 << 20 },
};

export function makeParams(parties: readonly TestParty[], overrides: Partial<SecAggParams> = {}): SecAggParams {
  return {
    collaboration: 'collab-1',
    roundId: 'round-1',
    parties: parties.map((p) => ({ id: p.id, signingKey: p.signingKey })),
    threshold: Math.floor(parties.length / 2) + 1,
    vectorLength: 16,
    clip: 4,
    scale: 1 << 16,
    ...overrides,
  };
}

export function randomInputs(count: number, length: number, spread = 5): number[][] {
  return Array.from({ length: count }, () => Array.from({ length }, () => (Math.random() * 2 - 1) * spread));
}

/** The sum mod 2^32 of the given parties' quantized inputs, as the protocol must output it. */
export function plainQuantizedSum(params: SecAggParams, inputs: readonly (readonly number[])[]): Uint32Array {
  const sum = new Uint32Array(params.vectorLength);
  for (const input of inputs) {
    const q = quantize(input, params);
    for (let i = 0; i < sum.length; i += 1) sum[i] = sum[i]! + q[i]!;
  }
  return sum;
}

export interface Simulation {
  readonly parties: readonly TestParty[];
  readonly params: SecAggParams;
  readonly inputs: readonly (readonly number[])[];
  server: ServerState;
  readonly states: Map<string, PartyState>;
  /** What the server last sent, to whom. */
  outbox: readonly Outgoing[];
}

export function startSimulation(parties: readonly TestParty[], params: SecAggParams, inputs: readonly (readonly number[])[]): Simulation {
  const states = new Map<string, PartyState>();
  for (const [i, p] of parties.entries()) {
    states.set(p.id, createParty({ params, allowed: ALLOWED, id: p.id, identitySecretKey: p.secretKey, input: inputs[i]! }));
  }
  return { parties, params, inputs, server: createServer({ params, allowed: ALLOWED }), states, outbox: [] };
}

/** Runs one round: each party not in `silent` sends its message, then the server closes the round. */
export function playRound(sim: Simulation, round: number, silent: ReadonlySet<string> = new Set()): SecAggResult | undefined {
  if (round === 0) {
    for (const p of sim.parties) {
      if (silent.has(p.id)) continue;
      const step = partyAdvertise(sim.states.get(p.id)!);
      sim.states.set(p.id, step.state);
      sim.server = serverAccept(sim.server, step.message);
    }
  } else {
    for (const out of sim.outbox) {
      if (silent.has(out.to)) continue;
      const step = partyRespond(sim.states.get(out.to)!, out.message);
      sim.states.set(out.to, step.state);
      sim.server = serverAccept(sim.server, step.message);
    }
  }
  const closed = serverClose(sim.server);
  sim.server = closed.state;
  sim.outbox = closed.outbox;
  return closed.result;
}

/** A whole run; `dropAt[r]` names the parties that go silent from round r on. */
export function simulate(sim: Simulation, dropAt: Record<number, readonly string[]> = {}): SecAggResult {
  const gone = new Set<string>();
  let result: SecAggResult | undefined;
  for (let round = 0; round <= 4; round += 1) {
    for (const id of dropAt[round] ?? []) gone.add(id);
    result = playRound(sim, round, gone);
  }
  if (result === undefined) throw new Error('the run ended without a result');
  return result;
}

/** The error a function throws (the test fails if it does not throw). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

/** Asserts a Malus refusal with the given error code and secagg reason. */
export function refusal(fn: () => unknown): { code: string | undefined; reason: string | undefined; message: string } {
  const error = thrown(fn);
  if (!(error instanceof MalusError)) throw error instanceof Error ? error : new Error(String(error));
  return { code: error.code, reason: secaggReason(error), message: error.message };
}
