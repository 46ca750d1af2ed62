/**
 * Kendall's tau-b in O(n log n) (Knight, 1966): sort by x (then y), count the swaps a merge sort
 * by y needs (the discordant pairs), and correct for ties on either side.
 * The fairness figure is tau between arrival order and admission order: 1 is perfectly fair
 * (first come, first admitted), 0 is a lottery, -1 is last come, first admitted.
 */
export interface Kendall {
  n: number;
  /** tau-b in [-1, 1]; null with fewer than 2 pairs or when either side is constant. */
  tau: number | null;
  /** Pairs ordered the same way on both sides. */
  concordant: number;
  /** Pairs ordered oppositely: each is one overtake. */
  discordant: number;
}

function tiePairs(sorted: ArrayLike<number>, idx: Int32Array | null): number {
  let pairs = 0;
  let run = 1;
  for (let i = 1; i <= sorted.length; i++) {
    const same = i < sorted.length && (idx ? sorted[idx[i]!] === sorted[idx[i - 1]!] : sorted[i] === sorted[i - 1]);
    if (same) run++;
    else {
      pairs += (run * (run - 1)) / 2;
      run = 1;
    }
  }
  return pairs;
}

export function kendallTau(x: ArrayLike<number>, y: ArrayLike<number>): Kendall {
  const n = x.length;
  if (y.length !== n) throw new RangeError('kendallTau: x and y must have the same length');
  if (n < 2) return { n, tau: null, concordant: 0, discordant: 0 };
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => x[a]! - x[b]! || y[a]! - y[b]!);

  const n0 = (n * (n - 1)) / 2;
  const n1 = tiePairs(x, order);
  let n3 = 0;
  {
    let run = 1;
    for (let i = 1; i <= n; i++) {
      const same = i < n && x[order[i]!] === x[order[i - 1]!] && y[order[i]!] === y[order[i - 1]!];
      if (same) run++;
      else {
        n3 += (run * (run - 1)) / 2;
        run = 1;
      }
    }
  }
  // Bottom-up merge sort of y (in x order), counting strict inversions.
  let a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = y[order[i]!]!;
  let b = new Float64Array(n);
  let swaps = 0;
  for (let width = 1; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n);
      const hi = Math.min(lo + 2 * width, n);
      let i = lo;
      let j = mid;
      let k = lo;
      while (i < mid && j < hi) {
        if (a[j]! < a[i]!) {
          swaps += mid - i;
          b[k++] = a[j++]!;
        } else b[k++] = a[i++]!;
      }
      while (i < mid) b[k++] = a[i++]!;
      while (j < hi) b[k++] = a[j++]!;
    }
    [a, b] = [b, a];
  }
  const n2 = tiePairs(a, null);
  const discordant = swaps;
  const concordant = n0 - n1 - n2 + n3 - discordant;
  const denom = Math.sqrt((n0 - n1) * (n0 - n2));
  return { n, tau: denom === 0 ? null : (concordant - discordant) / denom, concordant, discordant };
}
