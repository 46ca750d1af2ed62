/**
 * bench/join: the gateway's join path and live updates, side by side with their baselines
 * (issue 2's benchmark, and issue 4's defences-on-vs-off figure), all in one run:
 *  1. joins/s and p50/p99 latency, closed loop, gateway vs the same join script called once per
 *     request behind Fastify (bench/baseline-fastify.ts);
 *  2. p99 join latency at 10,000 joins/s offered (open model, constant arrival rate);
 *  3. gateway RSS per idle waiting WebSocket at (up to) 20,000 connections;
 *  4. time from one admission step to its position update reaching every waiter;
 *  5. joins/s with the room's defences on (captcha `suspicious`, large buckets, 100+100 CIDRs
 *     in the lists) vs off (captcha `off`, huge buckets, empty lists).
 * Every server under test runs in its own child process; load comes from worker processes and
 * is checked first against a trivial uWS endpoint. Each request is a new visitor (no cookie) from
 * a keep-alive connection with its own 127.0.0.0/8 source address; the per-IP buckets are
 * configured large (a connection sends thousands of joins) so they never reject.
 * Rounds alternate gateway and baseline; each figure is the median of its rounds.
 *
 * Redis is a redis-server of the bench's own (bench/lib/redis-server.ts; REDIS_URL picks another),
 * so its CPU (INFO used_cpu_*) and commandstats per answer are this run's alone; rows 1b measure a
 * visitor who already holds a place (cookie) joining again and asking GET /me, and 2b searches the
 * highest offered rate with p99 < 10 ms for the gateway and the baseline.
 *
 * Where a join's time goes (issue 16; gateway pinned to one core, load generator and Redis to the
 * other, `--cpu-prof`, commandstats on a private Redis, 20 joins per script call):
 *  - before: Redis ~30 µs per join inside EVALSHA (~17 commands per new join: the room bucket read
 *    and written per entry, HMGET+HSET+PEXPIRE per bucket per entry, HGET cf, PFADD+PEXPIRE+PFCOUNT,
 *    HINCRBY next, HSET, RPUSH), ~42 µs used_cpu in all. Gateway: crypto ~12% of its busy time (an
 *    HMAC to mint the id, HMAC + SHA-256 for the pre-queue member of every join, SHA-256 again for
 *    entrantId), the response write and uWS ~20%, ioredis command building ~8%, request copy and
 *    body ~10%, prom-client label hashing, promise hops. (Unpinned profiles put ~30% in
 *    writeUtf8String: the gateway preempted by the processes its writes wake, not its CPU.)
 *  - then (2026-12-02): Redis ~19 µs per join in EVALSHA (~6 commands per new join: every key read
 *    once and written once per call, the distinct-visitor count read only when it can decide),
 *    ~25 µs used_cpu; a re-join ~8 µs, GET /me ~2.5 µs and no script. Gateway: one HMAC per new
 *    join (by hand over crypto.hash) and one SHA-256, none for a re-join (checked ids remembered);
 *    what was left: uWS and the syscalls (~10 µs: the trivial endpoint), the generic route/body/
 *    promise machinery of waiting-room/http.ts (~15% of busy time), ioredis, tsx's __name helper
 *    on every named closure (~4%).
 *  - after (2026-12-03): Redis ~14-18 µs used_cpu per join, ~1 command per new join: the room
 *    bucket and every cf key one MGET, the ip and subnet buckets fields of one hash per generation
 *    (one HMGET per generation read, one HSET written, per call), the visitor ids seen from an ip
 *    in its bucket state instead of a HyperLogLog (PFADD + PEXPIRE per join), states packed as
 *    doubles (Lua's tonumber/%.14g were a large share of the script's own time). Left: the call
 *    itself (~3.6 µs a join for an empty script with the same arguments), the Lua loop, the
 *    tickets HSET and q:post RPUSH. Gateway 32-47 µs (perf, on-CPU: 27% kernel TCP, 14% V8 property
 *    access/calls, 9% strings and UTF-8, 6% malloc, 5% GC, 4% uWS, 3% promises, 1% crypto, 10%
 *    JIT code): the join script not auto-pipelined (a deferred one-command Pipeline per batch), no
 *    await for what is known at once (room, verdict), no per-request named closures, the body
 *    and address without copies or decoders. The V8 profile's 25-40% in the response and Redis
 *    writes (`collect`, writeUtf8String) is the gateway preempted by the processes its writes
 *    wake on the same 2 cores: use perf or bench/join-profile.ts --pin on a quiet machine.
 *
 *   npx tsx bench/join.ts             3 rounds x 5 s per side, 20,000 sockets (about 4 minutes)
 *   npx tsx bench/join.ts --quick     1 round x 2 s, 3,000 sockets (about 1 minute)
 *   npx tsx bench/join.ts --profile   also V8 profiles of the gateway during joins and fan-out
 * Apart: bench/join-ab.ts (this tree's gateway against a revision's), bench/join-script.ts (the
 * join script's Redis CPU against a revision's), bench/join-profile.ts (one request kind: Redis
 * commandstats per answer and a V8 profile).
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../shared/config.js';
import { createRedis } from '../shared/redis.js';
import type { BenchRow } from './types.js';
import { summarizeCpuProfiles } from './lib/cpu-profile.js';
import { LoadFleet, type LoadJob, type LoadSummary } from './lib/load.js';
import { cpuMeter, ServerProcess, type CpuUse } from './lib/server.js';
import { fmt, formatTable, median, row } from './lib/table.js';
import { BROWSER, DEFENCES_OFF, DEFENCES_ON, dropKeys, putRoom } from './lib/join-setup.js';
import { waitersPhase } from './lib/join-waiters.js';
import { perAnswer, redisMeter, startBenchRedis, type BenchRedis } from './lib/redis-server.js';

export const COMMAND = 'npx tsx bench/join.ts';
export interface JoinBenchOptions { quick?: boolean; log?: (line: string) => void; profile?: boolean }

function joinJob(port: number, room: string, kind: 'closed' | 'open', connections: number, ms: number, rate?: number, cookie?: string): Omit<LoadJob, 'addressOffset'> {
  return {
    kind, host: '127.0.0.1', port, method: 'POST', path: `/api/rooms/${room}/join`, headers: cookie ? { ...BROWSER, cookie } : BROWSER, body: '{}',
    connections, rate, durationMs: ms, warmupMs: 500, spreadSources: true,
  };
}

/** GET /me of one visitor (its cookie) from every connection. */
function meJob(port: number, room: string, connections: number, ms: number, cookie: string): Omit<LoadJob, 'addressOffset'> {
  return {
    kind: 'closed', host: '127.0.0.1', port, method: 'GET', path: `/api/rooms/${room}/me`, headers: { ...BROWSER, cookie },
    connections, durationMs: ms, warmupMs: 500, spreadSources: true,
  };
}

/** A visitor who holds a place in `room`: its cookie. */
async function joinedVisitor(port: number, room: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/api/rooms/${room}/join`, { method: 'POST', headers: BROWSER, body: '{}' });
  const body = (await res.json()) as { visitorId?: string };
  if (res.status !== 200 || !body.visitorId) throw new Error(`join for a cookie: ${res.status}`);
  return `wr_vid=${body.visitorId}`;
}

const describe = (s: LoadSummary) =>
  `${fmt(s.okPerSec, 0)} ok/s  p50 ${fmt(s.p50)} ms  p99 ${fmt(s.p99)} ms  statuses ${JSON.stringify(s.statuses)}` +
  `${s.errors ? `  conn errors ${s.errors}` : ''}${s.unsent ? `  never sent ${s.unsent}` : ''}`;

interface Side { label: string; run: () => Promise<LoadSummary>; pids: Record<string, number[]> }

const cpuText = (c: CpuUse) => Object.entries(c.seconds).map(([k, v]) => `${k} ${Math.round((100 * v) / c.wall)}%`).join(', ');

type Round = LoadSummary & { serverUsPerAnswer: number; redisUsPerAnswer: number; scriptsPerAnswer: number; commandsPerAnswer: number };

/** What one side of a comparison cost, as medians of its rounds. */
export interface SideFigures { okPerSec: number; p50: number; p99: number; serverUs: number; redisUs: number; scripts: number; commands: number; rejected: number }

/** One load run with the CPU of each process group and what Redis did meanwhile (INFO). */
async function measured(log: (l: string) => void, label: string, side: Side, redis: RedisMeter): Promise<Round> {
  const meter = cpuMeter(side.pids);
  const rmeter = await redis.meter();
  const s = await side.run();
  const cpu = meter();
  const r = perAnswer(await rmeter(), s.answered);
  const us = (1e6 * (cpu.seconds.server ?? NaN)) / s.answered;
  log(`  ${label}: ${describe(s)}  | CPU of a core: ${cpuText(cpu)}; server ${fmt(us, 1)} µs CPU per answer; Redis ${fmt(r.cpuUs, 1)} µs CPU, ${fmt(r.scripts, 3)} scripts, ${fmt(r.commands, 2)} commands per answer`);
  return { ...s, serverUsPerAnswer: us, redisUsPerAnswer: r.cpuUs, scriptsPerAnswer: r.scripts, commandsPerAnswer: r.commands };
}

const medianOf = (xs: Round[]): SideFigures => ({
  okPerSec: median(xs.map((x) => x.okPerSec)), p50: median(xs.map((x) => x.p50)), p99: median(xs.map((x) => x.p99)),
  serverUs: median(xs.map((x) => x.serverUsPerAnswer)), redisUs: median(xs.map((x) => x.redisUsPerAnswer)),
  scripts: median(xs.map((x) => x.scriptsPerAnswer)), commands: median(xs.map((x) => x.commandsPerAnswer)),
  rejected: xs.reduce((n, x) => n + Object.entries(x.statuses).filter(([st]) => st !== '200').reduce((m, [, c]) => m + c, 0), 0),
});

interface RedisMeter { meter: BenchRedis['meter'] }

/** Rounds of `a` then `b` (order swapped every round), with the CPU each process used; the medians of each. */
async function alternate(log: (l: string) => void, rounds: number, redis: RedisMeter, a: Side, b: Side) {
  const res: Round[][] = [[], []];
  for (let i = 0; i < rounds; i++) {
    for (const k of i % 2 ? [1, 0] : [0, 1]) {
      const side = k === 0 ? a : b;
      res[k]!.push(await measured(log, `round ${i + 1} ${side.label}`, side, redis));
    }
  }
  return { a: medianOf(res[0]!), b: medianOf(res[1]!) };
}

/** The highest of `rates` (tried highest first) whose open-model p99 stays under `p99Ms`, every join sent. */
async function highestRate(log: (l: string) => void, label: string, rates: number[], ms: number, run: (rate: number, ms: number) => Promise<LoadSummary>, p99Ms = 10) {
  for (const rate of rates) {
    const s = await run(rate, ms);
    log(`  ${label} at ${fmt(rate, 0)}/s offered: ${describe(s)}`);
    if (s.p99 < p99Ms && s.unsent === 0 && s.okPerSec >= 0.98 * rate) return { rate, p99: s.p99 };
  }
  return null;
}

/** The pid of the Redis server when it runs on this machine (for its CPU share), else none. */
async function localRedisPid(env: Record<string, string>): Promise<number[]> {
  const redis = createRedis(loadConfig(env).redisUrl);
  try {
    const pid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]);
    return pid && existsSync(`/proc/${pid}/stat`) ? [pid] : [];
  } finally {
    redis.disconnect();
  }
}

export async function run(opts: JoinBenchOptions = {}): Promise<BenchRow[]> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const quick = !!opts.quick;
  const rounds = quick ? 1 : 3;
  const roundMs = quick ? 2000 : 5000;
  const conns = 64;
  const sockets = quick ? 3000 : 20_000;
  const prefix = `bench-${randomUUID().slice(0, 8)}`;
  const env: Record<string, string> = { REDIS_PREFIX: prefix, GATEWAY_PORT: '0', LOG_LEVEL: 'warn' };
  // Redis: one of the benchmark's own (its CPU and commandstats are this run's alone), unless
  // REDIS_URL names one (then its INFO counts every client's work).
  const ownRedis = process.env.REDIS_URL ? null : await startBenchRedis();
  env.REDIS_URL = process.env.REDIS_URL ?? ownRedis!.url;
  const rmeter = redisMeter(env.REDIS_URL);
  const profDir = opts.profile ? mkdtempSync(path.join(os.tmpdir(), 'join-prof-')) : undefined;
  const rows: BenchRow[] = [];
  const load = new LoadFleet(2);
  const started: ServerProcess[] = [];
  const server = (target: 'trivial' | 'baseline' | 'gateway') => {
    const s = new ServerProcess(target);
    started.push(s);
    return s;
  };
  log(`[join] prefix ${prefix}; ${rounds} round(s) of ${roundMs / 1000} s per side; ${conns} keep-alive connections, one 127/8 source address each`);
  log(`[join] ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (the machine is shared: figures vary with it)`);
  try {
    // 0. The load generator's own ceiling, against a server that does nothing.
    const trivial = server('trivial');
    await trivial.start();
    const meter = cpuMeter({ server: [trivial.pid], load: load.pids });
    const ceiling = await load.run(joinJob(trivial.port, 'x', 'closed', conns, quick ? 1000 : 3000));
    const ceilingCpu = meter();
    const floor = await load.run(joinJob(trivial.port, 'x', 'open', 256, quick ? 1000 : 3000, 10_000));
    await trivial.stop();
    log(`[join] load generator vs a trivial uWS endpoint: closed loop ${describe(ceiling)} | CPU of a core: ${cpuText(ceilingCpu)}; open 10k/s: p99 ${fmt(floor.p99)} ms`);
    rows.push(row('load generator ceiling: trivial uWS endpoint, closed loop (req/s)', ceiling.okPerSec, null, null, 'info', null));

    // 1, 2, 5: throughput and latency, gateway and baseline in their own processes.
    const gw = server('gateway');
    await gw.start({ env });
    const base = server('baseline');
    for (const [room, cfg] of [['gw', DEFENCES_ON], ['base', DEFENCES_ON], ['gw-off', DEFENCES_OFF]] as const) await putRoom(gw.port, room, cfg);
    await base.start({ env });
    const redisPids = await localRedisPid(env);
    const pidsOf = (srv: ServerProcess) => ({ server: [srv.pid], redis: redisPids, load: load.pids });
    log(`[join] gateway pid ${gw.pid} port ${gw.port}; Fastify baseline pid ${base.pid} port ${base.port}; rooms gw, base (defences on, buckets large), gw-off`);

    log('[join] 1. joins/s, closed loop, gateway vs Fastify baseline (every join a new visitor)');
    const batches0 = await gw.command<{ calls: number; joins: number }>('joinBatches');
    const thr = await alternate(log, rounds, rmeter,
      { label: 'gateway', run: () => load.run(joinJob(gw.port, 'gw', 'closed', conns, roundMs)), pids: pidsOf(gw) },
      { label: 'baseline', run: () => load.run(joinJob(base.port, 'base', 'closed', conns, roundMs)), pids: pidsOf(base) });
    const batches1 = await gw.command<{ calls: number; joins: number }>('joinBatches');
    const perCall = (batches1.joins - batches0.joins) / Math.max(1, batches1.calls - batches0.calls);
    log(`  gateway placed ${fmt(perCall, 1)} joins per script call on average`);
    const ratio = thr.a.okPerSec / thr.b.okPerSec;
    rows.push(row('joins/s, closed loop (gateway vs 1 EVALSHA/request Fastify)', thr.a.okPerSec, thr.b.okPerSec, ratio, '>= 3x baseline', ratio >= 3));
    rows.push(row('server CPU per join, closed loop, defences on (µs; gateway vs baseline)', thr.a.serverUs, thr.b.serverUs, thr.b.serverUs / thr.a.serverUs, '<= 25 µs', thr.a.serverUs <= 25));
    rows.push(row('Redis CPU per join, closed loop (µs, used_cpu_*; gateway vs baseline)', thr.a.redisUs, thr.b.redisUs, thr.b.redisUs / thr.a.redisUs, '<= 10 µs', thr.a.redisUs <= 10));
    rows.push(row('join p50 latency, closed loop (ms)', thr.a.p50, thr.b.p50, thr.b.p50 / thr.a.p50, 'lower is better', null));
    rows.push(row('join p99 latency, closed loop (ms)', thr.a.p99, thr.b.p99, thr.b.p99 / thr.a.p99, 'lower is better', null));
    if (thr.a.rejected + thr.b.rejected) log(`  WARNING: ${thr.a.rejected} gateway and ${thr.b.rejected} baseline joins were not 200`);
    if (profDir) {
      const s = await gw.profiled(profDir, 'joins', () => load.run(joinJob(gw.port, 'gw', 'closed', conns, roundMs)));
      log(`  profiled gateway round: ${describe(s)}`);
      for (const line of summarizeCpuProfiles(profDir, 25, 'joins')) log(`  [cpu-prof gateway, closed-loop joins] ${line}`);
    }

    log('[join] 1b. a visitor who already holds a place joins again (cookie), and asks GET /me, closed loop');
    const cookie = await joinedVisitor(gw.port, 'gw');
    const again = await alternate(log, rounds, rmeter,
      { label: 're-join', run: () => load.run(joinJob(gw.port, 'gw', 'closed', conns, roundMs, undefined, cookie)), pids: pidsOf(gw) },
      { label: 'GET /me', run: () => load.run(meJob(gw.port, 'gw', conns, roundMs, cookie)), pids: pidsOf(gw) });
    rows.push(row('re-join of a placed visitor: gateway CPU per answer (µs; vs a first join)', again.a.serverUs, thr.a.serverUs, thr.a.serverUs / again.a.serverUs, '< a first join', again.a.serverUs < thr.a.serverUs));
    rows.push(row('re-join of a placed visitor: Redis CPU per answer (µs; vs a first join)', again.a.redisUs, thr.a.redisUs, thr.a.redisUs / again.a.redisUs, '< a first join', again.a.redisUs < thr.a.redisUs));
    rows.push(row('GET /me: gateway CPU per answer (µs)', again.b.serverUs, null, null, 'info', null));
    rows.push(row('GET /me: Redis CPU per answer (µs)', again.b.redisUs, null, null, 'info', null));
    rows.push(row('GET /me: scripts per answer', again.b.scripts, null, null, '< 1 (no script per visitor)', again.b.scripts < 1));
    rows.push(row('GET /me answers/s, closed loop', again.b.okPerSec, null, null, 'info', null));

    log('[join] 2. p99 at 10,000 joins/s offered (open model: latency from when each join was due)');
    const open = await alternate(log, rounds, rmeter,
      { label: 'gateway', run: () => load.run(joinJob(gw.port, 'gw', 'open', 256, roundMs, 10_000)), pids: pidsOf(gw) },
      { label: 'baseline', run: () => load.run(joinJob(base.port, 'base', 'open', 256, roundMs, 10_000)), pids: pidsOf(base) });
    rows.push(row(`join p99 at 10,000/s offered (ms; served ${fmt(open.a.okPerSec, 0)}/s)`, open.a.p99, open.b.p99, open.b.p99 / open.a.p99, '< 10 ms', open.a.p99 < 10 && open.a.okPerSec >= 9900));
    log('[join] 2b. the highest offered rate served with p99 < 10 ms, gateway and baseline');
    const rates = quick ? [20_000, 10_000, 5000, 2500] : [30_000, 25_000, 20_000, 15_000, 12_500, 10_000, 7500, 5000, 2500, 1000];
    const rateMs = quick ? 2000 : 3000;
    const gwBest = await highestRate(log, 'gateway', rates, rateMs, (rate, ms) => load.run(joinJob(gw.port, 'gw', 'open', 256, ms, rate)));
    const baseBest = await highestRate(log, 'baseline', rates.filter((r) => !gwBest || r <= gwBest.rate), rateMs, (rate, ms) => load.run(joinJob(base.port, 'base', 'open', 256, ms, rate)));
    const bestRatio = gwBest && baseBest ? gwBest.rate / baseBest.rate : null;
    rows.push(row(`highest offered joins/s with p99 < 10 ms (of ${rates.map((r) => fmt(r / 1000, 1) + 'k').join(', ')}; p99 ${fmt(gwBest?.p99)} vs ${fmt(baseBest?.p99)} ms)`,
      gwBest?.rate ?? 0, baseBest?.rate ?? 0, bestRatio, 'report (>= 10,000/s)', (gwBest?.rate ?? 0) >= 10_000));

    log('[join] 5. defences on (captcha suspicious, large buckets, 100+100 CIDRs) vs off (captcha off, huge buckets, no lists)');
    const def = await alternate(log, rounds, rmeter,
      { label: 'defences on', run: () => load.run(joinJob(gw.port, 'gw', 'closed', conns, roundMs)), pids: pidsOf(gw) },
      { label: 'defences off', run: () => load.run(joinJob(gw.port, 'gw-off', 'closed', conns, roundMs)), pids: pidsOf(gw) });
    const defRatio = def.a.okPerSec / def.b.okPerSec;
    rows.push(row('joins/s, defences on vs off (gateway)', def.a.okPerSec, def.b.okPerSec, defRatio, '>= 0.85x off', defRatio >= 0.85));
    rows.push(row('gateway CPU per join, defences on vs off (µs)', def.a.serverUs, def.b.serverUs, def.b.serverUs / def.a.serverUs, 'info', null));
    rows.push(row('Redis CPU per join, defences on vs off (µs)', def.a.redisUs, def.b.redisUs, def.b.redisUs / def.a.redisUs, 'info', null));
    await base.stop();
    await gw.stop();

    // 3, 4: a fresh gateway (so earlier load leaves no free heap behind) holding idle waiters, on a
    // prefix of its own (none of the earlier rooms to reload or tick).
    rows.push(...(await waitersPhase(log, server('gateway'), server('trivial'), { ...env, REDIS_PREFIX: `${prefix}-ws` }, sockets, quick ? 2 : 3, profDir)));
    if (profDir) for (const line of summarizeCpuProfiles(profDir, 25, 'waiters')) log(`  [cpu-prof gateway, waiters and fan-out steps] ${line}`);
  } finally {
    rmeter.close();
    await load.close();
    for (const s of started) await s.stop().catch(() => undefined);
    await dropKeys(env, prefix);
    await dropKeys(env, `${prefix}-ws`);
    await ownRedis?.stop();
  }
  log(`\n${formatTable(rows)}\n\nreproduce: ${COMMAND}${quick ? ' --quick' : ''}`);
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run({ quick: process.argv.includes('--quick'), profile: process.argv.includes('--profile') }).then(
    () => process.exit(0),
    (e: unknown) => { console.error(e); process.exit(1); },
  );
}
