/**
 * One row of `npm run bench`'s table. Every benchmark module in bench/ exports
 * `run(opts): Promise<BenchRow[]>` and can also be run alone with tsx.
 */
export interface BenchRow {
  /** What is measured, with its unit: "joins/s (gateway)", "p99 join latency at 10k/s (ms)". */
  figure: string;
  ours: number;
  /** The baseline measured side by side in the same run, or null where there is none. */
  baseline: number | null;
  /** ours / baseline (or baseline / ours where lower is better), null without a baseline. */
  ratio: number | null;
  /** The target as text: ">= 3x baseline", "< 2048 B", "< 250 ms". */
  target: string;
  met: boolean | null;
}

export interface BenchModule {
  run(opts?: { quick?: boolean; log?: (line: string) => void }): Promise<BenchRow[]>;
}
