import { ROUND_NAMES } from './messages.js';
import { MODULUS_BITS, PROTOCOL } from './params.js';
import type { ServerState } from './server.js';

// What a run leaves in the log: its parameters, how many parties took part in each round and how
// many bytes moved. Never an input, a masked value, a key, a share or the sum.

export interface SecAggRoundLog {
  readonly round: number;
  readonly name: (typeof ROUND_NAMES)[number];
  readonly accepted: number;
  readonly bytesIn: number;
  readonly messagesOut: number;
  readonly bytesOut: number;
}

export interface SecAggRunLog {
  readonly protocol: typeof PROTOCOL;
  readonly collaboration: string;
  readonly roundId: string;
  readonly status: 'running' | 'done';
  /** The round the server is in ('done' once unmasked). */
  readonly round: number | 'done';
  readonly parties: number;
  readonly threshold: number;
  readonly vectorLength: number;
  readonly clip: number;
  readonly scale: number;
  readonly modulusBits: typeof MODULUS_BITS;
  readonly rounds: readonly SecAggRoundLog[];
  /** |U3| and |U2 \ U3| once round 2 has closed, else null. */
  readonly contributors: number | null;
  readonly dropped: number | null;
}

export function serverLog(state: ServerState): SecAggRunLog {
  const p = state.run.params;
  const pastRound2 = state.round === 'done' || state.round > 2;
  return {
    protocol: PROTOCOL,
    collaboration: p.collaboration,
    roundId: p.roundId,
    status: state.round === 'done' ? 'done' : 'running',
    round: state.round,
    parties: p.parties.length,
    threshold: p.threshold,
    vectorLength: p.vectorLength,
    clip: p.clip,
    scale: p.scale,
    modulusBits: MODULUS_BITS,
    rounds: state.traffic.map((t, round) => ({ round, name: ROUND_NAMES[round] ?? 'unmasking', ...t })),
    contributors: pastRound2 ? state.survivors.length : null,
    dropped: pastRound2 ? state.dropped.length : null,
  };
}
