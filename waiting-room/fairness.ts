/**
 * The post-open fairness figure (issue 4): how far admission order strays from arrival order.
 * lua/admitBatch keeps the arrival ms of the last FAIRNESS_SAMPLE admitted post-open tickets in
 * admission order (a capped list, so memory stays flat at a million visitors); this compares that
 * sequence with arrival order.
 *
 * Arrival times are read by each gateway process on its own clock: with several processes the
 * figure also carries their clock skew (a few ms with NTP), so read small overtake counts between
 * near-simultaneous arrivals on different processes as noise, not unfairness.
 */

import { kendallTau } from '../shared/kendall.js';

/** Entries kept in the sample (the last admitted post-open tickets). */
export const FAIRNESS_SAMPLE = 20_000;

export interface OrderFairness {
  /** Kendall tau-b between arrival order and admission order: 1 = first come, first served. null below 2 distinct arrivals. */
  kendallTau: number | null;
  /** Pairs admitted in the opposite order of their arrival (strictly later arrival admitted first). */
  overtakes: number;
  /** Admitted post-open tickets compared. */
  sample: number;
}

/**
 * `arrivals` in admission order: Kendall tau-b against the admission rank (shared/kendall.ts, O(n log n)).
 * Pairs that arrived in the same ms are ties; admission order has none. Each discordant pair is one
 * overtake (a strictly later arrival admitted first).
 */
export function orderFairness(arrivals: number[]): OrderFairness {
  const rank = Array.from(arrivals, (_, i) => i);
  const k = kendallTau(rank, arrivals);
  return { kendallTau: k.tau, overtakes: k.discordant, sample: arrivals.length };
}
