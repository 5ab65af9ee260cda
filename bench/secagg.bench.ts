// Secure-aggregation benchmark (`npm run bench:secagg`): n parties (100) with vectors of L entries
// (100,000), 10% dropping out after round 1 (shares sent, no masked input), all simulated in one
// process. Prints the time per round (parties' and server's), per-party client time, the bytes each
// party sends over the plain vector size (4 bytes an entry) next to Bonawitz et al.'s 1.73x, and
// the time of just summing the plain vectors in the same run.
//
// SECAGG_PARTIES, SECAGG_LENGTH, SECAGG_DROP (a fraction) and SECAGG_THRESHOLD change the setup.
import { performance } from 'node:perf_hooks';
import { generateSigningKeyPair } from '../src/crypto/index.js';
import { partyIdFor } from '../src/identity/index.js';
import {
  createParty,
  createServer,
  partyAdvertise,
  partyRespond,
  quantize,
  ROUND_NAMES,
  serverAccept,
  serverClose,
  serverLog,
  type Outgoing,
  type PartyState,
  type SecAggParams,
  type SecAggResult,
} from '../src/secagg/index.js';

const N = Number(process.env.SECAGG_PARTIES ?? 100);
const L = Number(process.env.SECAGG_LENGTH ?? 100_000);
const DROP = Number(process.env.SECAGG_DROP ?? 0.1);
const T = Number(process.env.SECAGG_THRESHOLD ?? Math.floor((2 * N) / 3) + 1);

const ms = (x: number): string => `${x.toFixed(0)} ms`;
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(2)} MB`;

const keys = Array.from({ length: N }, () => generateSigningKeyPair());
const ids = keys.map((k) => partyIdFor(k.publicKey));
const params: SecAggParams = {
  collaboration: 'bench',
  roundId: 'round-1',
  parties: keys.map((k, i) => ({ id: ids[i]!, signingKey: k.publicKey })),
  threshold: T,
  vectorLength: L,
  clip: 1,
  scale: 2 ** 20,
};
const allowed = { vectorLength: { min: 1, max: L }, threshold: { min: T, max: N }, clip: { min: 0, max: 1 }, scale: { min: 1, max: 2 ** 20 } };
const inputs = ids.map(() => Float64Array.from({ length: L }, () => Math.random() * 2 - 1));
const dropped = new Set(ids.slice(0, Math.round(DROP * N)));

console.log(`secure aggregation: ${N} parties, ${L.toLocaleString('en')} entries, threshold ${T}, ${dropped.size} dropping after round 1\n`);

// Baseline: the plain sum of every vector, no protection at all.
const baselineStart = performance.now();
const plain = new Float64Array(L);
for (const input of inputs) for (let i = 0; i < L; i += 1) plain[i] = plain[i]! + input[i]!;
const baselineMs = performance.now() - baselineStart;

const sentBy = new Map(ids.map((id) => [id, 0]));
const clientMsBy = new Map(ids.map((id) => [id, 0]));
const roundClientMs: number[] = [];
const roundServerMs: number[] = [];
const states = new Map<string, PartyState>();

const clock = <T>(fn: () => T): [T, number] => {
  const started = performance.now();
  const value = fn();
  return [value, performance.now() - started];
};

const totalStart = performance.now();
const cpuStart = process.cpuUsage();
let setupMs = 0;
for (const [i, id] of ids.entries()) {
  const [state, took] = clock(() => createParty({ params, allowed, id, identitySecretKey: keys[i]!.secretKey, input: inputs[i]! }));
  states.set(id, state);
  clientMsBy.set(id, took);
  setupMs += took;
}
let server = createServer({ params, allowed });
let outbox: readonly Outgoing[] = [];
let result: SecAggResult | undefined;

for (let round = 0; round <= 4; round += 1) {
  let clientMs = 0;
  let serverMs = 0;
  const senders = round === 0 ? ids.map((to) => ({ to, message: undefined })) : outbox;
  for (const { to, message } of senders) {
    if (round === 2 && dropped.has(to)) continue;
    const state = states.get(to)!;
    const [step, took] = clock(() => (message === undefined ? partyAdvertise(state) : partyRespond(state, message)));
    clientMs += took;
    clientMsBy.set(to, clientMsBy.get(to)! + took);
    sentBy.set(to, sentBy.get(to)! + step.message.length);
    states.set(to, step.state);
    const [next, acceptMs] = clock(() => serverAccept(server, step.message));
    server = next;
    serverMs += acceptMs;
  }
  const [closed, closeMs] = clock(() => serverClose(server));
  server = closed.state;
  outbox = closed.outbox;
  result = closed.result;
  roundClientMs.push(clientMs);
  roundServerMs.push(serverMs + closeMs);
}
const totalMs = performance.now() - totalStart;
const cpu = process.cpuUsage(cpuStart);
if (result === undefined) throw new Error('no result');

// The output must be the exact sum mod 2^32 of the survivors' quantized inputs.
const expected = new Uint32Array(L);
for (const [i, id] of ids.entries()) {
  if (dropped.has(id)) continue;
  const q = quantize(inputs[i]!, params);
  for (let j = 0; j < L; j += 1) expected[j] = expected[j]! + q[j]!;
}
const exact = result.quantizedSum.every((v, j) => v === expected[j]);
if (!exact) throw new Error('the secure sum differs from the plain sum of the quantized survivors');

console.log('round                 parties (all)   server');
for (let round = 0; round <= 4; round += 1) {
  console.log(`${round} ${ROUND_NAMES[round]!.padEnd(20)} ${ms(roundClientMs[round]!).padStart(13)} ${ms(roundServerMs[round]!).padStart(8)}`);
}
console.log(`  (before round 0, all parties: checking the parameters and quantizing the inputs ${ms(setupMs)})`);
console.log(`total (one process, every party and the server in turn): ${ms(totalMs)} wall, ${ms((cpu.user + cpu.system) / 1000)} CPU`);

const survivors = ids.filter((id) => !dropped.has(id));
const clientTimes = survivors.map((id) => clientMsBy.get(id)!).sort((a, b) => a - b);
console.log(`per-party client time (survivors): median ${ms(clientTimes[Math.floor(clientTimes.length / 2)]!)}, max ${ms(clientTimes.at(-1)!)}`);

const plainBytes = 4 * L;
const sent = survivors.map((id) => sentBy.get(id)!);
const meanSent = sent.reduce((a, b) => a + b, 0) / sent.length;
const log = serverLog(server);
const received = log.rounds.reduce((s, r) => s + r.bytesOut, 0) / N;
console.log(`\nbytes a surviving party sends: ${mb(meanSent)} (plain vector ${mb(plainBytes)})`);
console.log(`communication expansion: ${(meanSent / plainBytes).toFixed(3)}x here (${N} parties, ${L.toLocaleString('en')} entries)   vs   1.73x Bonawitz et al. (2^10 parties, 2^20 entries)`);
console.log(`bytes the server sends a party, on average: ${mb(received)}`);
console.log(`\nbaseline, summing ${N} plain vectors: ${ms(baselineMs)}   (secure aggregation: ${(totalMs / Math.max(baselineMs, 0.001)).toFixed(0)}x)`);
console.log(`exact: the result equals the sum mod 2^32 of the ${survivors.length} survivors' quantized inputs`);
console.log(`\nrun log: ${JSON.stringify({ ...log, rounds: log.rounds.map((r) => `${r.name}:${r.accepted}`) })}`);
