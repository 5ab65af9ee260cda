import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';

// The demo's synthetic tables. People are numbered; person i's e-mail is user<i>@example.com and
// both parties hold its SHA-256, as ad platforms exchange it. The publisher saw people
// [0, VIEWERS); the advertiser sold to people [BUYERS_FROM, BUYERS_FROM + BUYERS) and to TARGET: the overlap is
// known in advance, so the demo can show an answer is right. Besides its six large campaigns, the
// publisher ran a few small ones, each shown to fewer people than the agreement's k (50), all of
// them buyers: a query must withhold their rows. The generator is seeded: every run writes the
// same rows.

export const VIEWERS = 60_000;
export const BUYERS_FROM = 45_000;
export const BUYERS = 20_000;
/**
 * One viewer who is not among the regular buyers placed a single order, the only one on
 * 1 December: whoever knows that about a person can try to learn, by differencing two allowed
 * answers, which campaigns that person saw. The demo shows k thresholds fail to stop it and DP does.
 */
export const TARGET = { person: BUYERS_FROM - 1, date: '2026-12-01', campaign: 'cmp-spring', value: '64.90' } as const;
export const KNOWN_OVERLAP = VIEWERS - BUYERS_FROM + 1;
/**
 * The one viewer who watched on a smart TV, once, a campaign ad: someone who knows that of a
 * person can learn from two threshold-only counts of the publisher's impressions which campaign
 * it was. Not a regular viewer, not a buyer.
 */
export const TV_VIEWER = { person: 70_000, device: 'smart-tv', campaign: 'cmp-spring' } as const;
const LARGE_CAMPAIGNS = ['cmp-spring', 'cmp-summer', 'cmp-autumn', 'cmp-winter', 'cmp-brand', 'cmp-retarget'] as const;
/** The small campaigns and the people each was shown to: first person, how many (all in the overlap). */
export const SMALL_CAMPAIGNS = [
  { campaign: 'cmp-pilot', from: 50_000, people: 40 },
  { campaign: 'cmp-local', from: 52_000, people: 24 },
  { campaign: 'cmp-influencer', from: 58_000, people: 9 },
] as const;
/** Every campaign the publisher ran. Purchases are attributed to the large ones only. */
export const CAMPAIGNS = [...LARGE_CAMPAIGNS, ...SMALL_CAMPAIGNS.map((c) => c.campaign)] as const;
const PLACEMENTS = ['homepage', 'article', 'video', 'sidebar'] as const;
const DEVICES = ['mobile', 'desktop', 'tablet', 'ctv'] as const;

/** mulberry32: a small seeded generator; synthetic data needs repeatability, not secrecy. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function emailHash(person: number): string {
  return createHash('sha256').update(`user${person}@example.com`).digest('hex');
}

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const pad = (n: number): string => String(n).padStart(2, '0');

async function writeLines(path: string, header: string, rows: number, line: (i: number) => string): Promise<void> {
  const out = createWriteStream(path, { mode: 0o600 });
  const batch: string[] = [header];
  for (let i = 0; i < rows; i += 1) {
    batch.push(line(i));
    if (batch.length === 10_000) {
      if (!out.write(`${batch.join('\n')}\n`)) await new Promise<void>((resolve) => out.once('drain', () => { resolve(); }));
      batch.length = 0;
    }
  }
  out.end(batch.length > 0 ? `${batch.join('\n')}\n` : '');
  await finished(out);
}

/** The publisher's impressions: one row per ad view in November 2026. */
export async function writeImpressions(path: string, rows = 200_000): Promise<void> {
  const random = seeded(2026);
  const hashes = Array.from({ length: VIEWERS }, (_, i) => emailHash(i));
  // The small campaigns' views are the last rows: one view for each of their people.
  const small = SMALL_CAMPAIGNS.flatMap((c) => Array.from({ length: c.people }, (_, k) => ({ person: c.from + k, campaign: c.campaign })));
  const smallFrom = Math.max(VIEWERS, rows - small.length);
  await writeLines(path, 'email_hash,campaign_id,shown_at,placement,device_type', rows, (i) => {
    // Every viewer appears at least once; the rest are repeat views.
    const repeat = i < VIEWERS ? i : Math.floor(random() * VIEWERS);
    const shown = `2026-11-${pad(1 + Math.floor(random() * 30))} ${pad(Math.floor(random() * 24))}:${pad(Math.floor(random() * 60))}:${pad(Math.floor(random() * 60))}`;
    const large = pick(random, LARGE_CAMPAIGNS);
    const view = i >= smallFrom ? small[i - smallFrom] : undefined;
    const placement = pick(random, PLACEMENTS);
    const device = pick(random, DEVICES);
    // The first repeat view is the smart-TV viewer's only one.
    if (i === VIEWERS) return `${emailHash(TV_VIEWER.person)},${TV_VIEWER.campaign},${shown},${placement},${TV_VIEWER.device}`;
    return `${hashes[view?.person ?? repeat] ?? ''},${view?.campaign ?? large},${shown},${placement},${device}`;
  });
}

/** The advertiser's purchases: one row per order. Its export tool writes hashes in upper case. */
export async function writeConversions(path: string, rows = 50_000): Promise<void> {
  const random = seeded(11);
  const hashes = Array.from({ length: BUYERS }, (_, i) => emailHash(BUYERS_FROM + i).toUpperCase());
  await writeLines(path, 'email_hash,campaign_id,order_date,order_value', rows, (i) => {
    if (i === rows - 1 && rows > BUYERS) return `${emailHash(TARGET.person).toUpperCase()},${TARGET.campaign},${TARGET.date},${TARGET.value}`;
    const buyer = i < BUYERS ? i : Math.floor(random() * BUYERS);
    const value = (5 + random() * 195).toFixed(2);
    return `${hashes[buyer] ?? ''},${pick(random, LARGE_CAMPAIGNS)},2026-11-${pad(1 + Math.floor(random() * 30))},${value}`;
  });
}
