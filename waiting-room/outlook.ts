/**
 * What a waiting visitor may expect (docs/api.md section 7): `unitsLeft` and `chance`.
 *
 * unitsLeft = available − outstanding admissions, never below 0, as the admitter last saw them.
 *
 * chance: the probability that a visitor at position P is admitted while a unit is left. Each
 * admission, from what this room has seen so far, goes on to reserve with probability
 * p = reserved / (reserved + lapsed + cold) (admissions whose claim lapsed unused count against,
 * and so do the claims still outstanding past half of claimSeconds without a reservation: a
 * reservation is seen within seconds, a lapse only after claimSeconds, so without them p is
 * near 1 early in a sale with ghosts and everyone beyond unitsLeft is told about 0: censoring).
 * Before the visitor come the outstanding admissions and the P − 1 visitors ahead: n of them,
 * and their reservations are Binomial(n, p). A unit is left for the visitor when fewer than
 * `available` of them reserve: chance = P(Binomial(n, p) ≤ available − 1). Exact for n ≤ 300,
 * the normal approximation (with continuity correction) above. Units that come back later
 * (a reservation that lapses, a payment that fails) are not counted: the figure errs low.
 * A visitor within `unitsLeft` of the front (n ≤ available − 1) gets 1 whatever p is: even if
 * everyone before it reserves, a unit is left; that holds before any outcome is seen too (in a
 * spike, the visitors admitted first are admitted before any outcome, and were shown nothing).
 * Otherwise null while there is nothing to go on (no admission has reserved or lapsed yet), and
 * null when checkout does not know the sale; 0 once sold out or closed.
 */
import type { RoomView } from './rooms.js';
import type { Snapshot } from './scripts.js';

export interface Outlook {
  /** Units not promised to anyone admitted; null when unknown. */
  unitsLeft: number | null;
  /** Chance for a visitor at `position` (1 = next); rounded to 0.01; null when unknown. */
  chanceAt(position: number): number | null;
  /** The stock holds the line (no unit free, or outstanding admissions reach the cap). */
  held: boolean;
}

/** Φ(z), the standard normal CDF (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7). */
function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/** P(X ≤ k) for X ~ Binomial(n, p). */
export function binomialCdf(k: number, n: number, p: number): number {
  if (k < 0) return 0;
  if (k >= n || p <= 0) return 1;
  if (p >= 1) return 0;
  if (n <= 300) {
    const lq = Math.log1p(-p);
    const ratio = Math.log(p) - lq;
    let logPmf = n * lq;
    let sum = Math.exp(logPmf);
    for (let i = 0; i < k; i++) {
      logPmf += Math.log((n - i) / (i + 1)) + ratio;
      sum += Math.exp(logPmf);
    }
    return Math.min(1, sum);
  }
  return normalCdf((k + 0.5 - n * p) / Math.sqrt(n * p * (1 - p)));
}

const round2 = (x: number) => Math.round(x * 100) / 100;

export function outlook(view: RoomView, snap: Snapshot): Outlook {
  const stock = view.stock;
  const seen = snap.stock;
  const over = view.state === 'sold_out' || view.state === 'closed';
  const held = view.held || (!!seen?.held && !over);
  if (!stock) return { unitsLeft: null, chanceAt: () => null, held };
  if (over) return { unitsLeft: 0, chanceAt: () => 0, held };
  // Before the admitter has run (not open yet) nothing is outstanding.
  const available = seen?.available ?? Math.max(0, stock.available);
  const outstanding = seen && seen.available !== null ? seen.outstanding : 0;
  const unitsLeft = Math.max(0, available - outstanding);
  const resolved = (seen?.reserved ?? 0) + (seen?.lapsed ?? 0);
  // Those before the visitor: the outstanding admissions and the position − 1 ahead in line.
  const before = (position: number) => outstanding + Math.max(0, position - 1);
  // Something to go on: an admission resolved (reserved or lapsed). Cold claims only refine p: with
  // none resolved they would make p 0 and promise everyone a unit on the strength of no purchase.
  if (resolved === 0) return { unitsLeft, chanceAt: (position) => (before(position) < available ? 1 : null), held };
  const p = seen!.reserved / (resolved + seen!.cold);
  return { unitsLeft, chanceAt: (position) => round2(binomialCdf(available - 1, before(position), p)), held };
}
