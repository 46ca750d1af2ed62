/**
 * Built-in synthetic drop-day profiles (`--profile`), generated from a seed so a run can be
 * repeated. Times are ms from the origin; `open` is when the room opens. Synthetic lines know
 * who is a bot (`bot`), which the report needs for the false-positive rate.
 *
 *  - spike:    everyone comes after open, most in the first seconds (exponential, mean 1.5 s).
 *  - prequeue: 70% wait in the 30 s pre-queue before open, then the rest spike at open.
 *  - bots30:   a spike of humans plus 30% bot visitors (of N visitors, 0.7 N humans and 0.3 N
 *              bots: 3 hammering IPs, each one visitor sending 40 cookie-less joins within 2 s;
 *              half the rest from many IPs of ONE /24 within 1 s; the others clients that keep
 *              no cookie, spread over 50 IPs).
 * Humans come from /24s of 20 hosts each (homes and offices behind ISPs); 10% of them join twice.
 */
import type { ReplayArrival, UaClass } from './ndjson.js';

export const PROFILES = ['spike', 'prequeue', 'bots30'] as const;
export type ProfileName = (typeof PROFILES)[number];

export interface Profile {
  name: ProfileName;
  open: number;
  arrivals: ReplayArrival[];
}

export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
}

const PREQUEUE_MS = 30_000;
const SPIKE_MEAN_MS = 1_500;
const SPIKE_MAX_MS = 15_000;
const HOSTS_PER_HUMAN_SUBNET = 20;

export function isProfile(s: string): s is ProfileName {
  return (PROFILES as readonly string[]).includes(s);
}

export function makeProfile(name: ProfileName, visitors: number, seed = 1): Profile {
  if (!Number.isInteger(visitors) || visitors < 1) throw new RangeError('visitors must be a positive integer');
  const rnd = mulberry32(seed);
  const open = name === 'prequeue' ? PREQUEUE_MS : 1_000;
  const spike = () => open + Math.min(SPIKE_MAX_MS, Math.round(-Math.log(1 - rnd()) * SPIKE_MEAN_MS));
  const out: ReplayArrival[] = [];
  const line = (t: number, ip: string, subnet: string, visitor: string, ua: UaClass, bot: boolean, noCookie = false) => {
    const a: ReplayArrival = { t, ip, subnet, visitor, ua, outcome: 'synthetic', ticket: null, bot };
    if (noCookie) a.noCookie = true;
    out.push(a);
  };

  const bots = name === 'bots30' ? Math.round(visitors * 0.3) : 0;
  const humans = visitors - bots;
  for (let i = 0; i < humans; i++) {
    const t = name === 'prequeue' && rnd() < 0.7 ? Math.floor(rnd() * PREQUEUE_MS) : spike();
    const subnet = `hs${Math.floor(i / HOSTS_PER_HUMAN_SUBNET)}`;
    const ua: UaClass = rnd() < 0.25 ? 'mobile' : 'browser';
    line(t, `h${i}`, subnet, `hv${i}`, ua, false);
    if (rnd() < 0.1) line(t + 500 + Math.floor(rnd() * 3000), `h${i}`, subnet, `hv${i}`, ua, false);
  }
  if (bots > 0) {
    const hammer = Math.min(3, bots);
    const farm = Math.floor((bots - hammer) / 2);
    const noCookie = bots - hammer - farm;
    const early = (spanMs = 2_000) => open - 200 + Math.floor(rnd() * spanMs);
    for (let i = 0; i < hammer; i++) {
      for (let k = 0; k < 40; k++) line(early(), `bh${i}`, `bhs${i}`, `bhv${i}`, 'curl', true, true);
    }
    for (let i = 0; i < farm; i++) line(early(1_000), `bf${i}`, 'bfs0', `bfv${i}`, rnd() < 0.5 ? 'bot' : 'empty', true);
    for (let i = 0; i < noCookie; i++) {
      line(early(), `bn${i % 50}`, `bns${i % 5}`, `bnv${i}`, rnd() < 0.5 ? 'browser' : 'empty', true, true);
    }
  }
  out.sort((a, b) => a.t - b.t);
  const first = out[0]!.t;
  // Offsets start at 0 like a recording's; open moves with them.
  for (const a of out) a.t -= first;
  return { name, open: open - first, arrivals: out };
}
