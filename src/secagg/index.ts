// Secure aggregation (Bonawitz et al., CCS 2017): n parties learn the sum of their vectors and
// nothing about any one of them, even if up to n - t drop out. docs/secagg.md describes the rounds.
export { checkRun, MAX_PARTIES, MAX_VECTOR_LENGTH, MODULUS_BITS, PROTOCOL, recommendedThreshold, type Range, type Run, type SecAggAllowed, type SecAggParams, type SecAggParty } from './params.js';
export { createParty, partyAdvertise, partyRespond, type PartyOptions, type PartyState, type PartyStep } from './party.js';
export { createServer, serverAccept, serverClose, type Outgoing, type RoundTraffic, type SecAggResult, type ServerOptions, type ServerState, type ServerStep } from './server.js';
export { serverLog, type SecAggRoundLog, type SecAggRunLog } from './log.js';
export { decodeMessage, encodeMessage, signingBytes } from './codec.js';
export { ROUND_NAMES, VERSION, type AdvertiseKeys, type AdvertisedKeys, type CheckSignature, type ConsistencyCheck, type ForwardedShares, type MaskedInput, type PartyMessage, type RoundNumber, type SealedBox, type SecAggMessage, type ServerMessage, type ShareKeys, type ShareOf, type SurvivorList, type Unmask, type UnmaskRequest, type Unsigned } from './messages.js';
export { signMessage } from './verify.js';
export { combineShares, commitToSecret, splitSecret, SECRET_BYTES, type Share, type SplitSecret } from './shamir.js';
export { dequantize, quantize, type Quantization } from './quantize.js';
export { SECAGG_REASONS, secaggReason, type SecAggReason } from './reasons.js';
