/**
 * Measure a 1,000,000-visitor pre-queue at open (by hand, not a test): fill the pre-queue exactly
 * as the join script leaves it (score 0, member = hex HMAC draw key + visitor id: waiting-room/draw.ts), then time the open switch (one call), ticket lookups (ZRANK),
 * and walking the whole pre-queue in ticket order through admitBatch in calls of 1,000, printing
 * the total and the slowest single call (timed around each EVALSHA and from Redis's SLOWLOG and CPU).
 *   npx tsx scripts/measure-prequeue.ts [N]      (REDIS_URL to use another Redis)
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { loadConfig } from '../shared/config.js';
import { createRedis } from '../shared/redis.js';
import { MAX_ADMIT_PER_CALL } from '../waiting-room/admitter.js';
import { roomKeys } from '../shared/keys.js';
import { preMember } from '../waiting-room/draw.js';
import { defineScripts } from '../shared/scripts.js';
import { admitBatch, Gate, lookupVisitor } from '../waiting-room/scripts.js';

const n = Number(process.argv[2] ?? 1_000_000);
const config = loadConfig(process.env);
const prefix = `measure-${randomUUID().slice(0, 8)}`;
const redis = defineScripts(createRedis(config.redisUrl));
const k = roomKeys(prefix, 'big');
const opensAt = Date.now();
const seed = randomBytes(32);
const sample: string[] = [];
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

const cpu = async () => {
  const info = await redis.info('cpu');
  return Number(/used_cpu_user:([\d.]+)/.exec(info)![1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]);
};

try {
  console.log(`filling a pre-queue of ${n.toLocaleString()} (prefix ${prefix})...`);
  for (let i = 0; i < n; i += 10_000) {
    const m = Math.min(10_000, n - i);
    const z: (string | number)[] = [];
    const seq: (string | number)[] = [];
    for (let j = 0; j < m; j++) {
      const vid = `${randomBytes(16).toString('base64url')}.${'x'.repeat(22)}`;
      if (sample.length < 1000 && j === 0) sample.push(vid);
      z.push(0, preMember(seed, vid));
      seq.push(vid, i + j + 1);
    }
    await redis.pipeline().zadd(k.pre, ...z).hset(k.preseq, ...seq).exec();
  }
  await redis.config('SET', 'slowlog-log-slower-than', '1000');
  await redis.slowlog('RESET');
  const cpu0 = await cpu();

  const admit = (now: number) => admitBatch(redis, prefix, 'big', {
    now, opensAtMs: opensAt, admitRatePerMin: 6_000_000, maxActive: 10_000_000, tokenTtlMs: 600_000, most: MAX_ADMIT_PER_CALL, gate: Gate.open, fairnessSampleCap: 0,
  });
  let t0 = performance.now();
  await admit(opensAt + 1);
  console.log(`open switch (fixes N, starts tickets ${n + 1}.. for later joiners): ${(performance.now() - t0).toFixed(2)} ms`);

  const look: number[] = [];
  for (const vid of sample) {
    t0 = performance.now();
    await lookupVisitor(redis, prefix, 'big', vid, preMember(seed, vid));
    look.push(performance.now() - t0);
  }
  look.sort((a, b) => a - b);
  console.log(`ticket lookup (ZRANK) of a pre-queue visitor: p50 ${pct(look, 0.5).toFixed(2)} ms, max ${look[look.length - 1]!.toFixed(2)} ms`);

  const times: number[] = [];
  const start = performance.now();
  let now = opensAt + 1;
  let admitted = 0;
  while (admitted < n) {
    now += 1000;
    t0 = performance.now();
    const r = await admit(now);
    times.push(performance.now() - t0);
    admitted += r.admitted.length;
  }
  const total = performance.now() - start;
  const cpuUsed = (await cpu()) - cpu0;
  times.sort((a, b) => a - b);
  const slow = (await redis.slowlog('GET', 1000)) as [number, number, number, string[]][];
  const ours = slow.filter((e) => e[3].some((a) => String(a).includes(prefix)));
  const worst = ours.reduce((m, e) => Math.max(m, Number(e[2])), 0);
  const [fsum, fn] = await redis.hmget(k.q, 'fsum', 'fn');
  console.log(`admitted all ${admitted.toLocaleString()} in ticket order in ${times.length} calls of ${MAX_ADMIT_PER_CALL}: ${(total / 1000).toFixed(2)} s`);
  console.log(`per call (round trip): p50 ${pct(times, 0.5).toFixed(2)} ms, p99 ${pct(times, 0.99).toFixed(2)} ms, max ${times[times.length - 1]!.toFixed(2)} ms`);
  console.log(`Redis CPU (whole server) over open + lookups + admission: ${cpuUsed.toFixed(2)} s = ${((cpuUsed * 1000) / times.length).toFixed(2)} ms per admit call`);
  console.log(`SLOWLOG: ${ours.length} of our calls over 1 ms inside Redis; worst ${(worst / 1000).toFixed(2)} ms`);
  console.log(`fairness: mean join percentile of the admitted pre-queue = ${(Number(fsum) / Number(fn)).toFixed(4)} (0.5 = fair)`);
} finally {
  await redis.config('SET', 'slowlog-log-slower-than', '10000');
  for (const key of [k.pre, k.preseq, k.tix, k.qpost, k.q, k.active, k.stats]) await redis.unlink(key);
  redis.disconnect();
}
