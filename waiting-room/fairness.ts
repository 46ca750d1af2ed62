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
 * `arrivals` in admission order. O(n log n): discordant pairs are the strict inversions counted by
 * a merge sort; pairs that arrived in the same ms are ties (neither concordant nor discordant), and
 * tau-b divides by sqrt((n0 - tiedArrivals) * n0) (admission order has no ties).
 */
export function orderFairness(arrivals: number[]): OrderFairness {
  const n = arrivals.length;
  const a = arrivals.slice();
  const buf = new Array<number>(n);
  let overtakes = 0;
  for (let width = 1; width < n; width *= 2) {
    for (let lo = 0; lo < n - width; lo += 2 * width) {
      const mid = lo + width;
      const hi = Math.min(lo + 2 * width, n);
      let i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        if (a[i]! <= a[j]!) buf[k++] = a[i++]!;
        else { overtakes += mid - i; buf[k++] = a[j++]!; }
      }
      while (i < mid) buf[k++] = a[i++]!;
      while (j < hi) buf[k++] = a[j++]!;
      for (let x = lo; x < hi; x++) a[x] = buf[x]!;
    }
  }
  // a is sorted now: count the pairs that arrived in the same ms.
  let tied = 0;
  for (let i = 0; i < n;) {
    let j = i + 1;
    while (j < n && a[j] === a[i]) j++;
    tied += ((j - i) * (j - i - 1)) / 2;
    i = j;
  }
  const pairs = (n * (n - 1)) / 2;
  const concordant = pairs - tied - overtakes;
  const denom = Math.sqrt((pairs - tied) * pairs);
  return { kendallTau: denom > 0 ? (concordant - overtakes) / denom : null, overtakes, sample: n };
}
