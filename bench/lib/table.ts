/** Printing of benchmark rows and small statistics shared by the benches. */
import type { BenchRow } from '../types.js';

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The p-th percentile (0-100) of plain samples, nearest rank. */
export function percentileOf(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function fmt(x: number | null | undefined, digits?: number): string {
  if (x === null || x === undefined) return '-';
  if (!Number.isFinite(x)) return String(x);
  const d = digits ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function row(figure: string, ours: number, baseline: number | null, ratio: number | null, target: string, met: boolean | null): BenchRow {
  return { figure, ours, baseline, ratio, target, met };
}

export function formatTable(rows: BenchRow[]): string {
  const head = ['figure', 'ours', 'baseline', 'ratio', 'target', 'met'];
  const cells = rows.map((r) => [
    r.figure, fmt(r.ours), fmt(r.baseline), r.ratio === null ? '-' : `${fmt(r.ratio, 2)}x`, r.target,
    r.met === null ? '-' : r.met ? 'yes' : 'NO',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 || i === 4 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}
