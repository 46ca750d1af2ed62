/**
 * bench/join-ab: this tree's gateway against another revision's, side by side in one run (issue
 * 16's before/after): both gateways in their own processes on one redis-server of the bench's own
 * (each on a prefix of its own), a room with the defences on (bench/lib/join-setup), closed-loop
 * load of 64 keep-alive connections from the same fleet, rounds alternating A and B (order swapped
 * every round); per round joins/s, p99, the gateway's CPU per answer (/proc) and Redis's (INFO
 * used_cpu_*), and the medians. The other revision is exported with `git archive` into a temporary
 * directory (its node_modules: this tree's).
 *
 *   npx tsx bench/join-ab.ts [--base cc8b881] [--rounds 4] [--seconds 4] [join|rejoin|me ...]
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../shared/config.js';
import { LoadFleet, type LoadJob } from './lib/load.js';
import { BROWSER, DEFENCES_ON, putRoom } from './lib/join-setup.js';
import { perAnswer, startBenchRedis } from './lib/redis-server.js';
import { cpuMeter, ServerProcess } from './lib/server.js';
import { fmt, median } from './lib/table.js';

const args = process.argv.slice(2);
const opt = (name: string, d: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1]! : d; };
const base = opt('base', 'cc8b881');
const rounds = Number(opt('rounds', '4'));
const seconds = Number(opt('seconds', '4'));
const kinds = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
if (!kinds.length) kinds.push('join', 'rejoin', 'me');

type Server = Pick<ServerProcess, 'start' | 'stop' | 'port' | 'pid'>;

async function main() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'join-ab-'));
  execFileSync('sh', ['-c', `git archive ${base} | tar -x -C ${dir}`], { cwd: PROJECT_ROOT });
  const nm = path.join(PROJECT_ROOT, 'node_modules');
  symlinkSync(existsSync(nm) ? path.resolve(nm) : nm, path.join(dir, 'node_modules'));
  const { ServerProcess: BaseServer } = (await import(path.join(dir, 'bench/lib/server.ts'))) as { ServerProcess: new (t: 'gateway') => Server };
  const redis = await startBenchRedis();
  const load = new LoadFleet(2);
  const sides: { label: string; gw: Server; cookie: string; rows: Record<string, { ok: number[]; us: number[]; rus: number[]; p99: number[] }> }[] = [];
  try {
    for (const [label, gw] of [['this tree', new ServerProcess('gateway')], [base, new BaseServer('gateway')]] as const) {
      await gw.start({ env: { REDIS_PREFIX: `ab-${randomUUID().slice(0, 8)}`, GATEWAY_PORT: '0', LOG_LEVEL: 'warn', REDIS_URL: redis.url } });
      await putRoom(gw.port, 'gw', DEFENCES_ON);
      const res = await fetch(`http://127.0.0.1:${gw.port}/api/rooms/gw/join`, { method: 'POST', headers: BROWSER, body: '{}' });
      const cookie = `wr_vid=${((await res.json()) as { visitorId: string }).visitorId}`;
      sides.push({ label, gw, cookie, rows: {} });
    }
    const job = (s: (typeof sides)[number], kind: string, ms: number): Omit<LoadJob, 'addressOffset'> => ({
      kind: 'closed', host: '127.0.0.1', port: s.gw.port, connections: 64, durationMs: ms, warmupMs: 500, spreadSources: true,
      ...(kind === 'me' ? { method: 'GET', path: '/api/rooms/gw/me', headers: { ...BROWSER, cookie: s.cookie } }
        : { method: 'POST', path: '/api/rooms/gw/join', body: '{}', headers: kind === 'rejoin' ? { ...BROWSER, cookie: s.cookie } : BROWSER }),
    });
    console.log(`[join-ab] ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; A = this tree, B = ${base}`);
    for (const kind of kinds) {
      for (const s of sides) { s.rows[kind] = { ok: [], us: [], rus: [], p99: [] }; await load.run(job(s, kind, 1500)); }
      for (let r = 0; r < rounds; r++) {
        for (const s of r % 2 ? [sides[1]!, sides[0]!] : sides) {
          const meter = cpuMeter({ server: [s.gw.pid] });
          const rm = await redis.meter();
          const out = await load.run(job(s, kind, seconds * 1000));
          const cpu = meter();
          const ru = perAnswer(await rm(), out.answered);
          const us = (1e6 * cpu.seconds.server!) / out.answered;
          const row = s.rows[kind]!;
          row.ok.push(out.okPerSec); row.us.push(us); row.rus.push(ru.cpuUs); row.p99.push(out.p99);
          console.log(`  ${kind} round ${r + 1} ${s.label}: ${fmt(out.okPerSec, 0)} ok/s, p99 ${fmt(out.p99)} ms, ${JSON.stringify(out.statuses)}; gateway ${fmt(us, 1)} µs CPU per answer, Redis ${fmt(ru.cpuUs, 1)} µs, ${fmt(ru.commands, 2)} commands`);
        }
      }
    }
    console.log(`\n| request | ${sides.map((s) => `${s.label}: answers/s, gateway µs, Redis µs`).join(' | ')} |\n|---|---|---|`);
    for (const kind of kinds) {
      const cell = (s: (typeof sides)[number]) => { const r = s.rows[kind]!; return `${fmt(median(r.ok), 0)}, ${fmt(median(r.us), 1)}, ${fmt(median(r.rus), 1)}`; };
      console.log(`| ${kind} | ${sides.map(cell).join(' | ')} |`);
    }
    console.log(`(medians of ${rounds} rounds of ${seconds} s, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')})`);
  } finally {
    await load.close();
    for (const s of sides) await s.gw.stop().catch(() => undefined);
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// Run only as a command: bench/run.ts imports every bench/*.ts (this one exports no run()).
if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(() => process.exit(0), (e: unknown) => { console.error(e); process.exit(1); });
}
