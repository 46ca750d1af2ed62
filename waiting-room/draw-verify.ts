/**
 * Checking a room's draw from the outside (docs/api.md section 8), with nothing but what the
 * gateway publishes: the commitment, the revealed seed, the entrant count and the drawn list.
 * Written on its own from the contract's text (it does not reuse draw.ts), so a mistake in the
 * gateway's draw cannot hide the same mistake here. Used by `npm run verify-draw` and the tests.
 */
import { createHash, createHmac } from 'node:crypto';

export interface PublishedDraw { commitment: string; seed: string; entrants: number }
export interface DrawnEntrant { ticket: number; entrantId: string }

export interface DrawVerdict {
  ok: boolean;
  /** What does not hold (empty when ok). At most MAX_PROBLEMS, then a count of the rest. */
  problems: string[];
  entrants: number;
  listed: number;
  /** The entrant asked about: its ticket (null when not in the list) and draw key. */
  entrant?: { entrantId: string; ticket: number | null; key: string };
}

const HEX64 = /^[0-9a-f]{64}$/;
const MAX_PROBLEMS = 10;

/** HMAC-SHA256 with the seed's 32 bytes as key over the ASCII entrantId. */
export function verifierKey(seed: Buffer, entrant: string): Buffer {
  return createHmac('sha256', seed).update(Buffer.from(entrant, 'ascii')).digest();
}

export interface VerifyOptions {
  /** The entrantId whose place to report (and which must be in the list). */
  entrant?: string;
  /** A commitment noted before open: the published one must be the same. */
  commitment?: string;
}

export function verifyDraw(pub: PublishedDraw, list: DrawnEntrant[], opts: VerifyOptions = {}): DrawVerdict {
  const problems: string[] = [];
  let more = 0;
  const problem = (p: string) => { if (problems.length < MAX_PROBLEMS) problems.push(p); else more++; };
  const verdict = (entrant?: DrawVerdict['entrant']): DrawVerdict => {
    if (more) problems.push(`... and ${more} more`);
    return { ok: problems.length === 0, problems, entrants: pub.entrants, listed: list.length, ...(entrant ? { entrant } : {}) };
  };

  if (!HEX64.test(pub.seed)) { problem('the seed is not 32 bytes of lowercase hex'); return verdict(); }
  if (!HEX64.test(pub.commitment)) problem('the commitment is not 32 bytes of lowercase hex');
  const seed = Buffer.from(pub.seed, 'hex');
  const hash = createHash('sha256').update(seed).digest('hex');
  if (hash !== pub.commitment) problem(`the seed does not match the commitment: SHA-256(seed) is ${hash}, the commitment ${pub.commitment}`);
  if (opts.commitment !== undefined && opts.commitment.toLowerCase() !== pub.commitment) {
    problem(`the published commitment ${pub.commitment} is not the one noted before open (${opts.commitment})`);
  }
  if (!Number.isSafeInteger(pub.entrants) || pub.entrants < 0) problem(`the entrant count ${pub.entrants} is not a whole number`);
  else if (list.length !== pub.entrants) problem(`the list has ${list.length} entrants, the draw says ${pub.entrants}`);

  const seen = new Set<string>();
  let prev: Buffer | null = null;
  let mine: DrawVerdict['entrant'];
  const wanted = opts.entrant?.toLowerCase();
  list.forEach((e, i) => {
    if (e.ticket !== i + 1) problem(`entry ${i + 1} holds ticket ${e.ticket}: tickets must run 1, 2, 3, ...`);
    if (typeof e.entrantId !== 'string' || !HEX64.test(e.entrantId)) { problem(`ticket ${e.ticket}: the entrantId is not 32 bytes of lowercase hex`); prev = null; return; }
    if (seen.has(e.entrantId)) problem(`ticket ${e.ticket}: entrant ${e.entrantId} is listed twice`);
    seen.add(e.entrantId);
    const key = verifierKey(seed, e.entrantId);
    if (prev && Buffer.compare(prev, key) >= 0) problem(`ticket ${e.ticket} is out of order: its draw key is not above ticket ${e.ticket - 1}'s`);
    prev = key;
    if (e.entrantId === wanted) mine = { entrantId: wanted, ticket: e.ticket, key: key.toString('hex') };
  });
  if (wanted !== undefined && !mine) {
    if (!HEX64.test(wanted)) problem(`${opts.entrant} is not an entrantId (32 bytes of lowercase hex)`);
    else problem(`entrant ${wanted} is not in the draw`);
    mine = { entrantId: wanted, ticket: null, key: HEX64.test(wanted) ? verifierKey(seed, wanted).toString('hex') : '' };
  }
  return verdict(mine);
}

export class DrawFetchError extends Error {}

/** Fetch the room's published draw and its whole list (pages of 10,000) from a gateway. */
export async function fetchDraw(gateway: string, room: string, fetchImpl: typeof fetch = fetch): Promise<{ pub: PublishedDraw; list: DrawnEntrant[] }> {
  const base = `${gateway.replace(/\/+$/, '')}/api/rooms/${encodeURIComponent(room)}`;
  const get = async (url: string) => {
    const res = await fetchImpl(url, { headers: { accept: 'application/json' } });
    const body = (await res.json().catch(() => null)) as Record<string, unknown> | null;
    if (!res.ok || !body) throw new DrawFetchError(`GET ${url}: ${res.status} ${body ? JSON.stringify(body) : ''}`);
    return body;
  };
  const state = await get(base);
  const draw = state.draw as Partial<PublishedDraw> | undefined;
  if (!draw || typeof draw.commitment !== 'string') throw new DrawFetchError(`room ${room} publishes no draw`);
  if (typeof draw.seed !== 'string' || typeof draw.entrants !== 'number') {
    throw new DrawFetchError(`room ${room} has not opened yet: its seed is still secret (commitment ${draw.commitment}; note it, and check again after open)`);
  }
  const list: DrawnEntrant[] = [];
  let after: number | null = 0;
  while (after !== null) {
    const page = await get(`${base}/draw?after=${after}&limit=10000`);
    const entrants = page.entrants as DrawnEntrant[];
    if (!Array.isArray(entrants)) throw new DrawFetchError('the draw list is not {entrants: [...]}');
    list.push(...entrants);
    const next = page.next as number | null;
    if (next !== null && (typeof next !== 'number' || next <= after)) throw new DrawFetchError(`the draw list's next (${String(next)}) does not move on from ${after}`);
    after = next;
  }
  return { pub: { commitment: draw.commitment, seed: draw.seed, entrants: draw.entrants }, list };
}
