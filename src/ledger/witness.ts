/**
 * The name under which a party cosigns checkpoints (the `name` of its tlog-cosignature/v1 lines).
 * The key is the party's Ed25519 signing key; cosignatures use their own signature type (0x04) and
 * message prefix, so they can never be confused with the party's other signatures.
 */
export function witnessName(partyId: string): string {
  return `malus-witness-${partyId}`;
}

export function partyIdOfWitness(name: string): string | undefined {
  const match = /^malus-witness-([0-9a-f]{20})$/.exec(name);
  return match?.[1];
}
