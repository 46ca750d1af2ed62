/**
 * bench/join-profile: where a join's CPU goes (issue 16), in the gateway and in Redis, for one
 * kind of request at a time. With --pin the gateway runs pinned to core 0 and the load generator
 * and the bench's own redis-server to core 1 (taskset), so a V8 sample that lands while the gateway
 * is preempted by them does not pass for its CPU (on a machine other work keeps busy, pinning
 * starves the gateway instead: then leave it off). Each scenario is first measured without the profiler
 * (gateway µs per answer from /proc, Redis used_cpu_* and every command's calls and usec per
 * answer from INFO commandstats), then profiled (self time per function and per file, and the
 * inclusive share of a few named frames).
 *
 *   npx tsx bench/join-profile.ts [join|rejoin|me ...] [--seconds 5] [--top 30] [--pin]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { summarizeCpuProfiles } from './lib/cpu-profile.js';
import { LoadFleet } from './lib/load.js';
import { cpuMeter, ServerProcess } from './lib/server.js';
import { fmt } from './lib/table.js';
import { BROWSER, DEFENCES_ON, dropKeys, putRoom } from './lib/join-setup.js';
import { startBenchRedis, type RedisUse } from './lib/redis-server.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : dflt; };
const seconds = opt('seconds', 5);
const top = opt('top', 30);
const pinned = args.includes('--pin');
const scenarios = args.filter((a, i) => !a.startsWith('--') && !(args[i - 1]?.startsWith('--') && args[i - 1] !== '--pin'));
if (!scenarios.length) scenarios.push('join');

/** Pin every thread of `pid` to `cpu` (best effort: without taskset the figures are unpinned). */
function pin(pid: number, cpu: number): void {
  if (!pinned) return;
  try { execFileSync('taskset', ['-a', '-cp', String(cpu), String(pid)], { stdio: 'ignore' }); } catch { console.log(`(taskset failed for ${pid})`); }
}

/** Inclusive time of frames whose function name matches, as a share of busy time (each sample counted once). */
function inclusive(dir: string, names: Record<string, RegExp>): string[] {
  interface Node { id: number; callFrame: { functionName: string; url: string }; children?: number[] }
  const out: string[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'))) {
    const prof = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
    const parent = new Map<number, number>();
    for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    const acc: Record<string, number> = Object.fromEntries(Object.keys(names).map((k) => [k, 0]));
    let busy = 0;
    prof.samples.forEach((id, i) => {
      const dt = prof.timeDeltas[i] ?? 0;
      if (byId.get(id)!.callFrame.functionName === '(idle)') return;
      busy += dt;
      const hit = new Set<string>();
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const n = byId.get(cur)!;
        const label = `${n.callFrame.functionName} ${n.callFrame.url}`;
        for (const [k, re] of Object.entries(names)) if (re.test(label)) hit.add(k);
      }
      for (const k of hit) acc[k]! += dt;
    });
    for (const [k, v] of Object.entries(acc)) out.push(`${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k} (inclusive)`);
  }
  return out;
}

const INCLUSIVE: Record<string, RegExp> = {
  'ioredis (all frames under ioredis)': /node_modules\/ioredis/,
  'crypto (hash, hmac, random)': /^(hash|oneShotDigest|digest|createHmac|randomFillSync|randomBytes) /,
  'JSON.parse/stringify': /^(parse|stringify) $/,
  'garbage collector': /^\(garbage collector\)/,
  'uWS writes (cork/end/writeHeader/writeStatus)': /^(cork|end|writeHeader|writeStatus) $/,
};

function redisLines(use: RedisUse, answers: number): string[] {
  const rows = Object.entries(use.commands).filter(([k]) => !k.startsWith('info'))
    .sort((a, b) => b[1].usec - a[1].usec)
    .map(([k, v]) => `    ${k.padEnd(10)} ${fmt(v.calls / answers, 3).padStart(7)} calls  ${fmt(v.usec / answers, 2).padStart(6)} µs  (${fmt(v.usec / v.calls, 2)} µs a call)`);
  return [`  Redis used_cpu ${fmt((1e6 * use.cpuSeconds) / answers, 1)} µs per answer; commandstats per answer (a script's own commands apart from evalsha):`, ...rows];
}

async function main() {
  const prefix = `prof-${randomUUID().slice(0, 8)}`;
  const redis = await startBenchRedis();
  pin(redis.pid, 1);
  const env: Record<string, string> = { REDIS_PREFIX: prefix, GATEWAY_PORT: '0', LOG_LEVEL: 'warn', REDIS_URL: redis.url };
  const load = new LoadFleet(2);
  const gw = new ServerProcess('gateway');
  try {
    await gw.start({ env });
    pin(gw.pid, 0);
    for (const p of load.pids) pin(p, 1);
    await putRoom(gw.port, 'gw', DEFENCES_ON);
    console.log(`[profile] ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; gateway pid ${gw.pid}${pinned ? ' on core 0, load and Redis on core 1' : ' (unpinned)'}`);
    const res = await fetch(`http://127.0.0.1:${gw.port}/api/rooms/gw/join`, { method: 'POST', headers: BROWSER, body: '{}' });
    const cookie = `wr_vid=${((await res.json()) as { visitorId: string }).visitorId}`;
    const job = (s: string) => ({
      kind: 'closed' as const, host: '127.0.0.1', port: gw.port, connections: 64, durationMs: seconds * 1000, warmupMs: 500, spreadSources: true,
      ...(s === 'me' ? { method: 'GET', path: '/api/rooms/gw/me', headers: { ...BROWSER, cookie } }
        : { method: 'POST', path: '/api/rooms/gw/join', body: '{}', headers: s === 'rejoin' ? { ...BROWSER, cookie } : BROWSER }),
    });
    for (const s of scenarios) {
      await load.run({ ...job(s), durationMs: 2000 }); // warm-up (JIT)
      const meter = cpuMeter({ server: [gw.pid] });
      const rm = await redis.meter();
      const r = await load.run(job(s));
      const cpu = meter();
      const use = await rm();
      console.log(`[profile] ${s}: ${fmt(r.okPerSec, 0)} ok/s p50 ${fmt(r.p50)} ms p99 ${fmt(r.p99)} ms ${JSON.stringify(r.statuses)}; gateway ${fmt((1e6 * cpu.seconds.server!) / r.answered, 1)} µs CPU per answer (${Math.round((100 * cpu.seconds.server!) / cpu.wall)}% of a core)`);
      for (const l of redisLines(use, r.answered)) console.log(l);
      const dir = mkdtempSync(path.join(os.tmpdir(), `prof-${s}-`));
      const pr = await gw.profiled(dir, s, () => load.run(job(s)));
      console.log(`  profiled: ${fmt(pr.okPerSec, 0)} ok/s; ${dir}`);
      for (const l of summarizeCpuProfiles(dir, top)) console.log(`  ${l}`);
      for (const l of inclusive(dir, INCLUSIVE)) console.log(`  ${l}`);
    }
  } finally {
    await load.close();
    await gw.stop().catch(() => undefined);
    await dropKeys(env, prefix).catch(() => undefined);
    await redis.stop();
  }
}

// Run only as a command: bench/run.ts imports every bench/*.ts (this one exports no run()).
if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(() => process.exit(0), (e: unknown) => { console.error(e); process.exit(1); });
}
