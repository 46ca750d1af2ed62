/**
 * A mergeable latency histogram (log-linear buckets, about 0.1% precision) that crosses
 * process boundaries as a sparse list, so load workers can each record and the parent merges.
 * Values are recorded in milliseconds and kept internally as whole microseconds.
 */
const LINEAR = 2048;
const SUB = 1024;
const SUB_BITS = 10;

function indexOf(us: number): number {
  if (us < LINEAR) return us;
  const exp = Math.floor(Math.log2(us));
  return LINEAR + (exp - 11) * SUB + ((us >>> (exp - SUB_BITS)) & (SUB - 1));
}

function valueOf(i: number): number {
  if (i < LINEAR) return i;
  const exp = Math.floor((i - LINEAR) / SUB) + 11;
  const sub = (i - LINEAR) % SUB;
  return (SUB + sub) * 2 ** (exp - SUB_BITS);
}

/** Sparse form sent over IPC: [bucket, count, bucket, count, ...]. */
export type HistogramJSON = { pairs: number[]; max: number; sum: number };

export class Histogram {
  private counts = new Map<number, number>();
  count = 0;
  sum = 0;
  max = 0;

  record(ms: number): void {
    const us = Math.max(0, Math.min(Math.round(ms * 1000), 2 ** 31 - 1));
    const i = indexOf(us);
    this.counts.set(i, (this.counts.get(i) ?? 0) + 1);
    this.count++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  merge(h: Histogram | HistogramJSON): this {
    const other = h instanceof Histogram ? h.toJSON() : h;
    for (let k = 0; k < other.pairs.length; k += 2) {
      const i = other.pairs[k]!;
      const c = other.pairs[k + 1]!;
      this.counts.set(i, (this.counts.get(i) ?? 0) + c);
      this.count += c;
    }
    this.sum += other.sum;
    this.max = Math.max(this.max, other.max);
    return this;
  }

  /** The value (ms) at or below which `p` percent of the samples lie. NaN when empty. */
  percentile(p: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    const keys = [...this.counts.keys()].sort((a, b) => a - b);
    let seen = 0;
    for (const k of keys) {
      seen += this.counts.get(k)!;
      if (seen >= rank) return Math.min(valueOf(k) / 1000, this.max);
    }
    return this.max;
  }

  mean(): number {
    return this.count ? this.sum / this.count : NaN;
  }

  toJSON(): HistogramJSON {
    const pairs: number[] = [];
    for (const [i, c] of this.counts) pairs.push(i, c);
    return { pairs, max: this.max, sum: this.sum };
  }

  static from(json: HistogramJSON): Histogram {
    return new Histogram().merge(json);
  }
}
