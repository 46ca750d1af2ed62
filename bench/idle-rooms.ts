/**
 * bench/idle-rooms: what rooms nobody is in cost (issue 16: "an idle room costs almost nothing").
 * A gateway (its own child process, admitter on, defaults of `npm start`) on a Redis of this
 * bench's own (a redis-server on a free port, so other work on the machine's Redis does not
 * count), with 0, 28 and 1,000 open rooms and nobody in them; CPU of the gateway process and of
 * redis-server over a quiet stretch, from /proc. The baseline is the same gateway with no room,
 * measured in the same run: a room's cost is (CPU with N rooms - CPU with none) / N per second.
 * Rounds alternate the sizes; each figure is the median of its rounds. A last check joins one
 * visitor into one of the 1,000 rooms and reports how long its first position message took (the
 * 2 s promise holds while the other rooms idle).
 *
 *   npx tsx bench/idle-rooms.ts            3 rounds x 10 s per size
 *   npx tsx bench/idle-rooms.ts --quick    1 round x 4 s
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { freePort } from '../shared/ports.js';
import { redisAnswers } from '../shared/redis.js';
import type { BenchRow } from './types.js';
import { cpuMeter, ServerProcess } from './lib/server.js';
import { fmt, formatTable, median, row } from './lib/table.js';
import { DEFENCES_OFF, putRoom } from './lib/join-setup.js';

export const COMMAND = 'npx tsx bench/idle-rooms.ts';
const SIZES = [0, 28, 1000] as const;
/** Target: at most 0.05 ms of CPU per idle room per second (5% of a core for 1,000 rooms). */
const TARGET_MS_PER_ROOM_S = 0.05;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ownRedis(): Promise<{ url: string; pid: number; stop(): void }> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-idle-'));
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100 && !(await redisAnswers(url, 300)); i++) await sleep(50);
  return { url, pid: child.pid!, stop: () => { child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); } };
}

interface Sample { gatewayMsPerS: number; redisMsPerS: number }

/** One gateway with `rooms` open empty rooms: CPU per second of it and of Redis over `ms`. */
async function measure(redis: { url: string; pid: number }, rooms: number, ms: number, round: number, log: (l: string) => void): Promise<{ sample: Sample; firstPositionMs?: number }> {
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: `idle${round}x${rooms}`, LOG_LEVEL: 'warn' };
  const gw = new ServerProcess('gateway', { env: { ...process.env, ...env } });
  try {
    const { port } = await gw.start({ env });
    for (let i = 0; i < rooms; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, rooms - i) }, (_, j) =>
        putRoom(port, `room${i + j}`, { sale: `sale${i + j}`, admitRatePerMin: 600, maxActive: 100, ...DEFENCES_OFF })));
    }
    await sleep(3000); // every room seen, opened and settled
    const meter = cpuMeter({ gateway: [gw.pid], redis: [redis.pid] });
    await sleep(ms);
    const use = meter();
    const sample = { gatewayMsPerS: (use.seconds.gateway! * 1000) / use.wall, redisMsPerS: (use.seconds.redis! * 1000) / use.wall };
    log(`${rooms} rooms, round ${round + 1}: gateway ${fmt(sample.gatewayMsPerS)} ms/s, redis ${fmt(sample.redisMsPerS)} ms/s`);
    let firstPositionMs: number | undefined;
    if (rooms > 0) {
      // One visitor in one of the idle rooms: its position message still comes promptly.
      const res = await fetch(`http://127.0.0.1:${port}/api/rooms/room${rooms - 1}/join`, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'Mozilla/5.0 bench' }, body: '{}' });
      const { visitorId } = (await res.json()) as { visitorId: string };
      const t0 = performance.now();
      firstPositionMs = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/api/rooms/room${rooms - 1}/ws?vid=${encodeURIComponent(visitorId)}`);
        const timer = setTimeout(() => { ws.terminate(); reject(new Error('no message within 10 s')); }, 10_000);
        ws.on('message', () => { clearTimeout(timer); ws.terminate(); resolve(performance.now() - t0); });
        ws.on('error', reject);
      });
    }
    return { sample, firstPositionMs };
  } finally {
    await gw.stop();
  }
}

export async function run(opts: { quick?: boolean; log?: (line: string) => void } = {}): Promise<BenchRow[]> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const rounds = opts.quick ? 1 : 3;
  const ms = opts.quick ? 4000 : 10_000;
  const redis = await ownRedis();
  const samples = new Map<number, Sample[]>(SIZES.map((n) => [n, []]));
  const firsts: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      for (const n of SIZES) {
        const { sample, firstPositionMs } = await measure(redis, n, ms, r, log);
        samples.get(n)!.push(sample);
        if (n === 1000 && firstPositionMs !== undefined) firsts.push(firstPositionMs);
      }
    }
  } finally {
    redis.stop();
  }
  const med = (n: number, k: keyof Sample) => median(samples.get(n)!.map((s) => s[k]));
  const perRoom = (n: number, k: keyof Sample) => (med(n, k) - med(0, k)) / n;
  const rows: BenchRow[] = [];
  for (const n of [28, 1000]) {
    rows.push(row(`gateway CPU, ${n} idle rooms (ms per s)`, med(n, 'gatewayMsPerS'), med(0, 'gatewayMsPerS'), null, '-', null));
    rows.push(row(`redis CPU, ${n} idle rooms (ms per s)`, med(n, 'redisMsPerS'), med(0, 'redisMsPerS'), null, '-', null));
  }
  const total = perRoom(1000, 'gatewayMsPerS') + perRoom(1000, 'redisMsPerS');
  rows.push(row('gateway CPU per idle room (ms per s, 1,000 rooms)', perRoom(1000, 'gatewayMsPerS'), null, null, '-', null));
  rows.push(row('redis CPU per idle room (ms per s, 1,000 rooms)', perRoom(1000, 'redisMsPerS'), null, null, '-', null));
  rows.push(row('CPU per idle room, gateway + redis (ms per s)', total, null, null, `<= ${TARGET_MS_PER_ROOM_S}`, total <= TARGET_MS_PER_ROOM_S));
  rows.push(row('first position message in 1 of 1,000 idle rooms (ms)', median(firsts), null, null, '< 2000', median(firsts) < 2000));
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await run({ quick: process.argv.includes('--quick') });
  process.stdout.write(`\n${formatTable(rows)}\n\nreproduce: ${COMMAND}${process.argv.includes('--quick') ? ' --quick' : ''}\n`);
}
