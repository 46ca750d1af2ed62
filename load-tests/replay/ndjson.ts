/**
 * Reading recordings: the NDJSON written by waiting-room/recorder.ts (or by a synthetic
 * profile). Blank lines are skipped; a malformed line is an error naming its line number.
 */
import type { RecordedArrival, RecordingHeader, UaClass } from '../../waiting-room/recorder.js';

export type { RecordedArrival, RecordingHeader, UaClass };

/** A recorded arrival, plus what only synthetic profiles know. */
export interface ReplayArrival extends RecordedArrival {
  /** True for a synthetic bot, false for a synthetic human, absent in a real recording. */
  bot?: boolean;
  /** Synthetic clients that keep no cookie: every attempt is a new visitor. */
  noCookie?: boolean;
}

export interface Recording {
  header: RecordingHeader | null;
  /** Sorted by `t` (stable: equal offsets keep file order). */
  arrivals: ReplayArrival[];
  /** opensAt in ms from the origin: from the lines' `open`, else inferred (see inferOpen). */
  open: number;
}

export class RecordingError extends Error {
  override name = 'RecordingError';
}

const UA: ReadonlySet<string> = new Set(['browser', 'mobile', 'curl', 'bot', 'empty']);

function check(o: Record<string, unknown>, n: number): ReplayArrival {
  const bad = (what: string) => new RecordingError(`line ${n}: ${what}`);
  if (typeof o.t !== 'number' || !Number.isFinite(o.t)) throw bad('"t" must be a number (ms)');
  for (const k of ['ip', 'subnet', 'visitor', 'outcome'] as const) {
    if (typeof o[k] !== 'string' || !o[k]) throw bad(`"${k}" must be a non-empty string`);
  }
  if (typeof o.ua !== 'string' || !UA.has(o.ua)) throw bad('"ua" must be one of browser, mobile, curl, bot, empty');
  if (o.ticket !== null && o.ticket !== undefined && !Number.isInteger(o.ticket)) throw bad('"ticket" must be an integer or null');
  if (o.open !== undefined && typeof o.open !== 'number') throw bad('"open" must be a number (ms)');
  const a: ReplayArrival = {
    t: o.t, ip: o.ip as string, subnet: o.subnet as string, visitor: o.visitor as string,
    ua: o.ua as UaClass, outcome: o.outcome as string, ticket: (o.ticket as number | null | undefined) ?? null,
  };
  if (typeof o.open === 'number') a.open = o.open;
  if (typeof o.bot === 'boolean') a.bot = o.bot;
  if (o.noCookie === true) a.noCookie = true;
  return a;
}

export function parseRecording(text: string): Recording {
  let header: RecordingHeader | null = null;
  const arrivals: ReplayArrival[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (!raw) continue;
    let o: unknown;
    try {
      o = JSON.parse(raw);
    } catch {
      throw new RecordingError(`line ${i + 1}: not JSON`);
    }
    if (!o || typeof o !== 'object' || Array.isArray(o)) throw new RecordingError(`line ${i + 1}: not an object`);
    const rec = o as Record<string, unknown>;
    if (rec.type === 'recording') {
      header = rec as unknown as RecordingHeader;
      continue;
    }
    arrivals.push(check(rec, i + 1));
  }
  arrivals.sort((a, b) => a.t - b.t);
  return { header, arrivals, open: inferOpen(arrivals) };
}

/**
 * When the room opened, in the recording's ms: the `open` field when any line has it; else
 * halfway between the last pre-queue join (joined, no ticket) and the first ticketed join; else
 * the first arrival (everyone came after open).
 */
export function inferOpen(arrivals: readonly ReplayArrival[]): number {
  const withOpen = arrivals.find((a) => a.open !== undefined);
  if (withOpen) return withOpen.open!;
  let lastPre: number | null = null;
  let firstTicket: number | null = null;
  for (const a of arrivals) {
    if (a.outcome !== 'joined') continue;
    if (a.ticket === null) lastPre = a.t;
    else if (firstTicket === null || a.t < firstTicket) firstTicket = a.t;
  }
  if (lastPre !== null && firstTicket !== null) return Math.max(lastPre, Math.round((lastPre + firstTicket) / 2));
  if (lastPre !== null) return lastPre + 1;
  return arrivals.length ? arrivals[0]!.t : 0;
}

export function toNdjson(arrivals: readonly ReplayArrival[], header?: RecordingHeader): string {
  const out = header ? [JSON.stringify(header)] : [];
  for (const a of arrivals) out.push(JSON.stringify(a));
  return out.join('\n') + '\n';
}
