/**
 * The buckets of the `chance` calibration table (docs/chance.md), shared by the gateway's fairness
 * report (waiting-room/report.ts) and the replay report (load-tests/replay/report.ts), so the two
 * tables can be compared bucket by bucket: [from, to) of the chance shown, the last one [0.9, 1].
 */
export const CHANCE_BUCKETS: readonly (readonly [number, number])[] = [[0, 0.1], [0.1, 0.3], [0.3, 0.6], [0.6, 0.9], [0.9, 1]];

/** The index in CHANCE_BUCKETS of a chance shown (0..1). */
export function chanceBucket(chance: number): number {
  for (let k = 0; k < CHANCE_BUCKETS.length - 1; k++) if (chance < CHANCE_BUCKETS[k]![1]) return k;
  return CHANCE_BUCKETS.length - 1;
}
