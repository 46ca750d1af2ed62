/**
 * bench/capacity: the figures README "Capacity" sizes a deployment from, measured here, and the
 * table derived from them (for 100K joins/s and 1M waiting sockets by default), in one run:
 *  1. joins/s, p99, gateway CPU per join and Redis CPU per join, per master: 1 gateway vs 3
 *     gateways on one port (SO_REUSEPORT) against a real Redis Cluster of 3 masters + 3 replicas
 *     (redis-server, scripts/redis-cluster.ts), and 1 gateway on one Redis, rounds alternating,
 *     medians; joins go to 6 rooms, 2 on each master. Redis CPU is the server's own account
 *     (INFO used_cpu_user + used_cpu_sys) over the round; command time (INFO commandstats) too;
 *     Redis memory per waiting visitor (INFO used_memory over the joins).
 *  2. gateway RSS per idle waiting WebSocket: a gateway child's RSS after GC with the visitors
 *     joined, then with half and all of N sockets open (clients spread over processes of at most
 *     5,000 sockets; the gateway itself may hold at most ~20,000 open files here); and the gateway
 *     CPU one position update to all of them costs.
 *  3. checkout CPU and Postgres CPU per reservation: checkout's reservation route (as bench/checkout
 *     runs it) against a Postgres of this run's own (scripts/postgres-server.ts, fsync off), so the
 *     CPU of every Postgres process (its process group) is this load's alone.
 * The figures are CPU time per unit of work, which a busy shared 2-core box changes much less than
 * throughput; the table divides the targets by them, at 50 % utilisation per core.
 *
 *   npx tsx bench/capacity.ts            3 rounds x 5 s per side, 18,000 sockets (about 4 minutes)
 *   npx tsx bench/capacity.ts --quick    1 round x 3 s, 4,000 sockets (about 1.5 minutes)
 *   options: --joins 100000 --sockets 1000000 --reservations 2000 (the targets of the table)
 */
import crypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startRedisCluster, type RedisCluster } from '../scripts/redis-cluster.js';
import { startPostgresServer } from '../scripts/postgres-server.js';
import { spawnService, type Service } from '../scripts/procs.js';
import { createDatabaseIfMissing } from '../checkout/postgres.js';
import { roomKeys } from '../shared/keys.js';
import { freePort } from '../shared/ports.js';
import type { BenchRow } from './types.js';
import { LoadFleet, type LoadJob, type LoadSummary } from './lib/load.js';
import { cpuMeter, cpuSecondsOf, ServerProcess, treeCpuSeconds } from './lib/server.js';
import { fmt, median, row } from './lib/table.js';
import { BROWSER, DEFENCES_OFF, DEFENCES_ON, putRoom } from './lib/join-setup.js';
import { WsFleet } from './lib/ws-fleet.js';
import { startBenchRedis } from './lib/redis-server.js';
import { makeSigner, phase, SESSION_SECRET, sessionFor, startServer, type Buyer } from './checkout.js';

export const COMMAND = 'npx tsx bench/capacity.ts';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 2 ** 20;

export interface CapacityOptions {
  quick?: boolean;
  log?: (line: string) => void;
  /** The targets the table sizes for. */
  joinsPerSec?: number;
  sockets?: number;
  reservationsPerSec?: number;
}

// ---------------------------------------------------------------- Redis accounting

interface NodeStats { port: number; role: string; cpu: number; /** µs spent in scripts (EVALSHA), their calls included. */ cmdUsec: number; usedMemory: number }

async function nodeStats(port: number): Promise<NodeStats> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableAutoPipelining: false });
  r.on('error', () => {});
  try {
    await r.connect();
    const info = await r.info('everything');
    const num = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
    // Scripts only: the commands a script calls are counted again under their own names.
    const cmdUsec = [...info.matchAll(/^cmdstat_(?:evalsha|eval|evalsha_ro|eval_ro):calls=\d+,usec=(\d+)/gm)].reduce((s, m) => s + Number(m[1]), 0);
    return { port, role: /^role:(\w+)/m.exec(info)?.[1] ?? '?', cpu: num('used_cpu_user') + num('used_cpu_sys'), cmdUsec, usedMemory: num('used_memory') };
  } finally {
    r.disconnect();
  }
}

const snapshot = (ports: number[]) => Promise.all(ports.map(nodeStats));

// ---------------------------------------------------------------- join sides

interface Side {
  label: string;
  port: number;
  gateways: Service[];
  /** Redis ports to account (masters and replicas, or the one Redis). */
  redisPorts: number[];
  /** The rooms its joins go to (default: all of the run's). */
  rooms?: string[];
}

interface JoinRound {
  okPerSec: number; p99: number; joins: number; non200: number;
  gatewayUs: number; loadUs: number;
  /** Per Redis node: role, CPU µs per join, command µs per join, share of the masters' CPU. */
  nodes: { port: number; role: string; cpuUs: number; cmdUs: number }[];
  masterCpuUs: number; replicaCpuUs: number; masterCmdUs: number; bytesPerVisitor: number;
}

function joinJob(port: number, room: string, connections: number, ms: number): Omit<LoadJob, 'addressOffset'> {
  return { kind: 'closed', host: '127.0.0.1', port, method: 'POST', path: `/api/rooms/${room}/join`, headers: BROWSER, body: '{}', connections, durationMs: ms, warmupMs: 500, spreadSources: true };
}

/** CPU a side uses a second with no load (gateway timers, Redis cron and gossip): taken off each round's figures. */
interface Idle { gatewayPerSec: number; redisPerSec: Map<number, number> }

async function idleOf(side: Side, ms = 2000): Promise<Idle> {
  const before = await snapshot(side.redisPorts);
  const meter = cpuMeter({ gateway: side.gateways.map((g) => g.pid) });
  await sleep(ms);
  const cpu = meter();
  const after = await snapshot(side.redisPorts);
  return { gatewayPerSec: cpu.seconds.gateway! / cpu.wall, redisPerSec: new Map(after.map((a, i) => [a.port, (a.cpu - before[i]!.cpu) / cpu.wall])) };
}

async function joinRound(load: LoadFleet, side: Side, rooms: string[], conns: number, ms: number, idle?: Idle): Promise<JoinRound> {
  const before = await snapshot(side.redisPorts);
  const meter = cpuMeter({ gateway: side.gateways.map((g) => g.pid), load: load.pids });
  const res: LoadSummary[] = await Promise.all(rooms.map((room) => load.run(joinJob(side.port, room, Math.max(2, Math.round(conns / rooms.length)), ms))));
  const cpu = meter();
  const after = await snapshot(side.redisPorts);
  const inWindow = res.reduce((s, r) => s + Object.values(r.statuses).reduce((a, b) => a + b, 0), 0);
  const ok200 = res.reduce((s, r) => s + (r.statuses['200'] ?? 0), 0);
  // Every answer of the round (warm-up and drain too) did its work: CPU is divided by all the joins placed.
  const joins = res.reduce((s, r) => s + r.answered, 0) * (inWindow ? ok200 / inWindow : 1);
  const nodes = after.map((a, i) => ({ port: a.port, role: a.role, cpuUs: (1e6 * (a.cpu - before[i]!.cpu - (idle?.redisPerSec.get(a.port) ?? 0) * cpu.wall)) / joins, cmdUs: (a.cmdUsec - before[i]!.cmdUsec) / joins }));
  const masters = after.map((a, i) => ({ a, b: before[i]! })).filter(({ a }) => a.role === 'master');
  const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
  return {
    okPerSec: sum(res.map((r) => r.okPerSec)), p99: Math.max(...res.map((r) => r.p99)), joins, non200: inWindow - ok200,
    gatewayUs: (1e6 * (cpu.seconds.gateway! - (idle?.gatewayPerSec ?? 0) * cpu.wall)) / joins, loadUs: (1e6 * cpu.seconds.load!) / joins,
    nodes,
    masterCpuUs: sum(nodes.filter((n) => n.role === 'master').map((n) => n.cpuUs)),
    replicaCpuUs: sum(nodes.filter((n) => n.role !== 'master').map((n) => n.cpuUs)),
    masterCmdUs: sum(nodes.filter((n) => n.role === 'master').map((n) => n.cmdUs)),
    bytesPerVisitor: sum(masters.map(({ a, b }) => a.usedMemory - b.usedMemory)) / joins,
  };
}

async function startSide(label: string, n: number, env: Record<string, string>, redisPorts: number[]): Promise<Side> {
  const port = await freePort();
  const gateways = await Promise.all(Array.from({ length: n }, (_, i) => spawnService(`${label}-${i + 1}`, 'scripts/gateway.ts', { env: { ...env, GATEWAY_PORT: String(port) } })));
  return { label, port, gateways, redisPorts };
}

/** Room names, `perMaster` on each master of the cluster (each room's keys are one slot). */
async function roomsOverMasters(cluster: RedisCluster, prefix: string, perMaster: number): Promise<string[]> {
  const masters = await cluster.masters();
  const by = new Map<number, string[]>(masters.map((m) => [m, []]));
  for (let i = 0; [...by.values()].some((rs) => rs.length < perMaster); i++) {
    const room = `cap-${i}`;
    const rs = by.get(await cluster.masterOf(roomKeys(prefix, room).q))!;
    if (rs.length < perMaster) rs.push(room);
  }
  return [...by.values()].flat();
}

// ---------------------------------------------------------------- Postgres

// ---------------------------------------------------------------- the run

export async function run(opts: CapacityOptions = {}): Promise<BenchRow[]> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const quick = !!opts.quick;
  const target = { joins: opts.joinsPerSec ?? 100_000, sockets: opts.sockets ?? 1_000_000, reservations: opts.reservationsPerSec ?? 2000 };
  const rounds = quick ? 1 : 3;
  const roundMs = quick ? 3000 : 5000;
  const conns = 96;
  const prefix = `cap-${crypto.randomUUID().slice(0, 8)}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wr-capacity-'));
  const stops: (() => Promise<unknown>)[] = [];
  const rows: BenchRow[] = [];
  log(`[capacity] ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (a shared machine: throughput varies with it, CPU per unit much less)`);
  const load = new LoadFleet(2);
  stops.push(() => load.close());
  try {
    // 1. Joins: 1 gateway vs 3 gateways on the cluster, 1 gateway on one Redis.
    const cluster = await startRedisCluster({ dir: path.join(dir, 'cluster'), masters: 3, replicas: 1, log });
    stops.push(() => cluster.stop());
    // A single redis-server of this run's own, with the cluster nodes' persistence (AOF everysec).
    const one = await startBenchRedis(['--appendonly', 'yes', '--appendfsync', 'everysec']);
    stops.push(() => one.stop());
    const base = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', REDIS_PREFIX: prefix, LOG_LEVEL: 'warn', GATEWAY_HOST: '127.0.0.1' };
    const clusterEnv = { ...base, REDIS_CLUSTER_NODES: cluster.seeds };
    const clusterPorts = cluster.nodes.map((n) => n.port);
    const rooms = await roomsOverMasters(cluster, prefix, 2);
    const sides = [
      await startSide('1gw-cluster', 1, clusterEnv, clusterPorts),
      await startSide('3gw-cluster', 3, clusterEnv, clusterPorts),
      await startSide('1gw-one-redis', 1, { ...base, REDIS_URL: one.url }, [one.port]),
    ];
    for (const s of [...sides]) stops.push(() => Promise.all(s.gateways.map((g) => g.stop(3000))));
    // Admission at 60/min: its cost stays out of the join figures (the admitter runs in every gateway).
    const roomCfg = { ...DEFENCES_ON, admitRatePerMin: 60, maxActive: 10_000_000 };
    for (const room of rooms) {
      await putRoom(sides[0]!.port, room, roomCfg);
      await putRoom(sides[2]!.port, room, roomCfg);
    }
    await sleep(1500); // every gateway has reloaded the rooms
    log(`[capacity] 1. joins: rooms ${rooms.join(', ')} (2 per master); ${conns} keep-alive connections, one 127/8 source each; ${rounds} round(s) of ${roundMs / 1000} s per side, order rotating`);
    log(`  Redis Cluster nodes ${cluster.seeds}; one Redis on ${one.port}; gateways: ${sides.map((s) => `${s.label} pids ${s.gateways.map((g) => g.pid).join(' ')} port ${s.port}`).join('; ')}`);
    // The 1-gateway cluster side once more with every join on one room: a hot room's batches are
    // bigger, so its Redis CPU per join is what one master pays for a one-room drop.
    sides.push({ ...sides[0]!, label: '1gw-one-room', rooms: rooms.slice(0, 1) });
    for (const s of sides) await joinRound(load, s, s.rooms ?? rooms, conns, 1000); // warm (JIT, connections)
    const idles = new Map<string, Idle>();
    for (const s of sides) {
      const idle = await idleOf(s);
      idles.set(s.label, idle);
      log(`  ${s.label} idle: gateway(s) ${fmt(idle.gatewayPerSec * 1000, 0)} ms CPU a second, Redis ${[...idle.redisPerSec.values()].map((x) => fmt(x * 1000, 0)).join(' / ')} ms a second per node (taken off the figures below)`);
    }
    const results = new Map<string, JoinRound[]>(sides.map((s) => [s.label, []]));
    for (let i = 0; i < rounds; i++) {
      for (let k = 0; k < sides.length; k++) {
        const s = sides[(k + i) % sides.length]!;
        const r = await joinRound(load, s, s.rooms ?? rooms, conns, roundMs, idles.get(s.label));
        results.get(s.label)!.push(r);
        const masters = r.nodes.filter((n) => n.role === 'master').map((n) => `${n.port} ${fmt(n.cpuUs)}`).join(', ');
        log(`  round ${i + 1} ${s.label.padEnd(13)}: ${fmt(r.okPerSec, 0)} joins/s, p99 ${fmt(r.p99)} ms${r.non200 ? `, ${r.non200} not 200` : ''} | CPU µs per join: gateway(s) ${fmt(r.gatewayUs)}, ` +
          `Redis masters ${fmt(r.masterCpuUs)} (${masters}), replicas ${fmt(r.replicaCpuUs)}, in scripts ${fmt(r.masterCmdUs)}; load generator ${fmt(r.loadUs)} | Redis ${fmt(r.bytesPerVisitor, 0)} B per visitor`);
      }
    }
    const med = (label: string, k: keyof JoinRound) => median(results.get(label)!.map((r) => r[k] as number));
    const [g1, g3, gOne, gHot] = ['1gw-cluster', '3gw-cluster', '1gw-one-redis', '1gw-one-room'];
    rows.push(row('joins/s, Redis Cluster: 3 gateways on one port vs 1 gateway', med(g3!, 'okPerSec'), med(g1!, 'okPerSec'), med(g3!, 'okPerSec') / med(g1!, 'okPerSec'), 'info (2 cores: bounded by the machine, see CPU per join)', null));
    rows.push(row('join p99 (ms; max over the rooms), 3 gateways vs 1 gateway', med(g3!, 'p99'), med(g1!, 'p99'), med(g1!, 'p99') / med(g3!, 'p99'), 'info', null));
    rows.push(row('joins/s, 1 gateway: Redis Cluster vs one Redis', med(g1!, 'okPerSec'), med(gOne!, 'okPerSec'), med(g1!, 'okPerSec') / med(gOne!, 'okPerSec'), 'info', null));
    rows.push(row('gateway CPU per join (µs), 3 gateways vs 1 (cluster)', med(g3!, 'gatewayUs'), med(g1!, 'gatewayUs'), med(g1!, 'gatewayUs') / med(g3!, 'gatewayUs'), 'info (flat: scales out)', null));
    rows.push(row('gateway CPU per join (µs), cluster vs one Redis', med(g1!, 'gatewayUs'), med(gOne!, 'gatewayUs'), med(gOne!, 'gatewayUs') / med(g1!, 'gatewayUs'), 'info', null));
    rows.push(row('Redis CPU per join, all masters (µs), 3 gateways vs 1', med(g3!, 'masterCpuUs'), med(g1!, 'masterCpuUs'), med(g1!, 'masterCpuUs') / med(g3!, 'masterCpuUs'), 'info', null));
    rows.push(row('Redis CPU per join (µs), cluster masters vs one Redis', med(g1!, 'masterCpuUs'), med(gOne!, 'masterCpuUs'), med(gOne!, 'masterCpuUs') / med(g1!, 'masterCpuUs'), 'info', null));
    rows.push(row('Redis CPU per join on its master, all joins on one room vs 6 rooms (µs; 1 gateway, cluster)', med(gHot!, 'masterCpuUs'), med(g1!, 'masterCpuUs'), med(g1!, 'masterCpuUs') / med(gHot!, 'masterCpuUs'), 'info', null));
    rows.push(row('joins/s, all on one room vs 6 rooms (1 gateway, cluster)', med(gHot!, 'okPerSec'), med(g1!, 'okPerSec'), med(gHot!, 'okPerSec') / med(g1!, 'okPerSec'), 'info', null));
    rows.push(row('Redis CPU per join, replicas (µs; 1 gateway)', med(g1!, 'replicaCpuUs'), null, null, 'info', null));
    rows.push(row('Redis time in scripts per join, masters (µs; commandstats EVALSHA, 1 gateway)', med(g1!, 'masterCmdUs'), null, null, 'info (part of the CPU above)', null));
    for (const label of [g1!, g3!]) {
      const rs = results.get(label)!;
      const ports = rs[0]!.nodes.filter((n) => n.role === 'master').map((n) => n.port);
      const per = ports.map((p) => median(rs.map((r) => r.nodes.find((n) => n.port === p)!.cpuUs)));
      const total = per.reduce((s, x) => s + x, 0);
      rows.push(row(`Redis CPU per join on each master, ${label} (µs: ${ports.map((p, i) => `${p} ${fmt(per[i])}`).join(', ')})`, Math.max(...per), Math.min(...per), Math.max(...per) / Math.min(...per), 'info (2 rooms each: even)', null));
      log(`  ${label}: masters' shares of the Redis CPU ${per.map((x) => `${Math.round((100 * x) / total)}%`).join(' / ')}`);
    }
    const bytesPerVisitor = median([...results.get(g1!)!, ...results.get(g3!)!].map((r) => r.bytesPerVisitor));
    rows.push(row('Redis memory per waiting visitor (B, masters; each replica holds as much again)', bytesPerVisitor, null, null, 'info', null));
    for (const s of sides) await Promise.all(s.gateways.map((g) => g.stop(3000))); // (one-room shares side 1's)

    // 2. Memory per waiting WebSocket, and the CPU of one position update to all of them.
    const gw = new ServerProcess('gateway');
    stops.push(() => gw.stop());
    await gw.start({ env: { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_PREFIX: `${prefix}-ws`, LOG_LEVEL: 'warn' }, admitter: false });
    await putRoom(gw.port, 'ws', { ...DEFENCES_OFF, admitRatePerMin: 600, maxActive: 10_000_000 });
    const count = Math.min(quick ? 4000 : 18_000, 20_000 - gw.fds() - 64);
    const half = Math.floor(count / 2);
    const fleets = [new WsFleet(half, 5000), new WsFleet(count - half, 5000)];
    let fleetsClosed = false;
    const closeFleets = async () => { if (!fleetsClosed) { fleetsClosed = true; for (const f of fleets) await f.close(); } };
    stops.push(closeFleets);
    log(`[capacity] 2. memory per idle waiting WebSocket: ${count} sockets on one gateway (pid ${gw.pid}, ${gw.fds()} fds before; the limit is 20,000 per process)`);
    for (const [i, f] of fleets.entries()) await f.join({ host: '127.0.0.1', port: gw.port, room: 'ws', headers: BROWSER }, 2_000_000 + i * 1_000_000);
    const settledRss = async () => { await sleep(1500); let m = await gw.gc(); for (let k = 0; k < 4; k++) { await sleep(300); const x = await gw.gc(); if (x.rss < m.rss) m = x; } return m; };
    const m0 = await settledRss();
    const o1 = await fleets[0]!.open();
    const m1 = await settledRss();
    const o2 = await fleets[1]!.open();
    const m2 = await settledRss();
    const opened = o1.opened + o2.opened;
    if (o1.failed + o2.failed) log(`  ${o1.failed + o2.failed} sockets failed to open, first: ${o1.firstError ?? o2.firstError}`);
    const perSocket = (m2.rss - m0.rss) / opened;
    const marginal = (m2.rss - m1.rss) / o2.opened;
    log(`  RSS after GC: ${fmt(m0.rss / MiB, 1)} MiB with the visitors joined, ${fmt(m1.rss / MiB, 1)} MiB with ${o1.opened} sockets, ${fmt(m2.rss / MiB, 1)} MiB with ${opened}: ` +
      `${fmt(perSocket, 0)} B per socket over all, ${fmt(marginal, 0)} B per socket for the second half; JS heap +${fmt((m2.heapUsed - m0.heapUsed) / opened, 0)} B per socket`);
    rows.push(row(`gateway RSS per idle waiting WebSocket at ${opened} (B; second half alone in baseline)`, perSocket, marginal, null, '< 2048 B', perSocket < 2048));
    rows.push(row('gateway RSS with no socket (MiB, after GC, the visitors joined)', m0.rss / MiB, null, null, 'info (per process)', null));
    // A position update to every socket: the gateway's CPU over UPDATES admission steps 1 s apart,
    // less as long idle (CPU is counted in 10 ms ticks: one update alone is too short to see).
    await gw.command('admitAndPublish'); // starts the admission clock
    await sleep(1000);
    const UPDATES = 5;
    const idleMeter = cpuMeter({ gw: [gw.pid] });
    await sleep(3000);
    const idlePerSec = idleMeter().seconds.gw! / 3;
    const meter = cpuMeter({ gw: [gw.pid] });
    const sendMs: number[] = [];
    for (let i = 0; i < UPDATES; i++) {
      const step = await gw.command<{ tRound: number; tSent: number }>('admitAndPublish');
      sendMs.push(step.tSent - step.tRound);
      await sleep(1000);
    }
    const used = meter();
    const fanoutUs = (1e6 * (used.seconds.gw! - idlePerSec * used.wall)) / (UPDATES * opened);
    log(`  ${UPDATES} position updates to all ${opened}: ${fmt(fanoutUs, 2)} µs gateway CPU per socket per update (idle: ${fmt(idlePerSec * 1000, 0)} ms CPU a second; each round sent in ${sendMs.map((x) => fmt(x, 0)).join(', ')} ms)`);
    rows.push(row(`gateway CPU per socket per position update (µs, ${opened} sockets)`, fanoutUs, null, null, 'info', null));
    await closeFleets();
    await gw.stop();

    // 3. Checkout and Postgres CPU per reservation, on a Postgres of this run's own.
    log('[capacity] 3. checkout and Postgres CPU per reservation (checkout\'s reservation route, a Postgres of its own: fsync off, synchronous_commit on)');
    const pgServer = await startPostgresServer();
    stops.push(() => pgServer.stop());
    await createDatabaseIfMissing(pgServer.adminUrl, 'checkout');
    const signer = makeSigner();
    const jwks = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(signer.jwks));
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    stops.push(() => new Promise((r) => jwks.close(r)));
    const coEnv = {
      DATABASE_URL: pgServer.url, JWKS_URL: `http://127.0.0.1:${(jwks.address() as { port: number }).port}/.well-known/jwks.json`,
      REDIS_URL: one.url, REDIS_PREFIX: `${prefix}-co`, SESSION_SECRET, LOG_LEVEL: 'silent',
    };
    const co = await startServer('ours', coEnv);
    stops.push(() => new Promise((r) => { if (co.proc.exitCode !== null) return r(null); co.proc.once('exit', r); co.proc.kill('SIGTERM'); }));
    const db = new pg.Client({ connectionString: pgServer.url });
    await db.connect();
    stops.push(() => db.end());
    const perPhase = quick ? 4000 : 8000;
    const { rows: users } = await db.query<{ id: string }>(
      `INSERT INTO users (email, password_hash) SELECT 'cap' || g || '@example.com', 'x' FROM generate_series(1, $1::int) g RETURNING id`, [perPhase * (rounds + 1)]);
    const buyers: Buyer[] = users.map((u) => ({ userId: u.id, session: sessionFor(u.id) }));
    const now = Date.now();
    await db.query(`INSERT INTO sales (id, name, price_cents, currency, total, available, starts_at, ends_at, reservation_seconds)
      VALUES ('cap', 'cap', 100, 'EUR', 10000000, 10000000, $1, $2, 600)`, [new Date(now - 60_000), new Date(now + 3600_000)]);
    const pgid = pgServer.pid()!;
    const concurrency = 32;
    const coRuns: { perSec: number; coUs: number; pgUs: number }[] = [];
    for (let i = 0; i <= rounds; i++) {
      const slice = buyers.slice(i * perPhase, (i + 1) * perPhase);
      for (const b of slice) b.token = signer.sign('cap', `v-${b.userId}`);
      const co0 = cpuSecondsOf(co.proc.pid!);
      const pg0 = treeCpuSeconds(pgid);
      const r = await phase(co.url, 'cap', slice, concurrency, { ms: quick ? 2000 : 3000 }, signer.sign);
      const coUs = (1e6 * (cpuSecondsOf(co.proc.pid!) - co0)) / Math.max(1, r.reserved);
      const pgUs = (1e6 * (treeCpuSeconds(pgid) - pg0)) / Math.max(1, r.reserved);
      if (i === 0) { log(`  warm-up: ${fmt(r.perSecond, 0)} reservations/s`); continue; }
      coRuns.push({ perSec: r.perSecond, coUs, pgUs });
      log(`  round ${i}: ${fmt(r.perSecond, 0)} reservations/s at ${concurrency} concurrent buyers${r.other ? ` (${r.other} not 201/409)` : ''} | CPU µs per reservation: checkout ${fmt(coUs, 0)}, Postgres (every process) ${fmt(pgUs, 0)}`);
    }
    const coUs = median(coRuns.map((r) => r.coUs));
    const pgUs = median(coRuns.map((r) => r.pgUs));
    rows.push(row(`reservations/s, one checkout, one hot sale, ${concurrency} buyers`, median(coRuns.map((r) => r.perSec)), null, null, 'info', null));
    rows.push(row('checkout CPU per reservation (µs)', coUs, null, null, 'info', null));
    rows.push(row('Postgres CPU per reservation (µs, every Postgres process)', pgUs, null, null, 'info', null));

    // The table.
    const f = {
      gatewayUs: med(g1!, 'gatewayUs'), redisUs: med(g1!, 'masterCpuUs'), replicaUs: med(g1!, 'replicaCpuUs'), bytesPerVisitor,
      perSocket: Math.max(perSocket, marginal), baseRss: m0.rss, fanoutUs, coUs, pgUs,
    };
    log(`\n${capacityTable(f, target)}\n`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
  log(`reproduce: ${COMMAND}${quick ? ' --quick' : ''}`);
  return rows;
}

export interface Figures {
  /** CPU µs per join: gateway, Redis masters (all), Redis replicas (all). */
  gatewayUs: number; redisUs: number; replicaUs: number;
  /** Redis bytes per waiting visitor (on its master). */
  bytesPerVisitor: number;
  /** Gateway RSS bytes per idle socket, and per process with none. */
  perSocket: number; baseRss: number;
  /** Gateway CPU µs per socket per position update. */
  fanoutUs: number;
  /** CPU µs per reservation: checkout, Postgres. */
  coUs: number; pgUs: number;
}

/** How big each part should be for the targets, from the measured figures: every core at most half busy. */
export function capacityTable(f: Figures, t: { joins: number; sockets: number; reservations: number }): string {
  const UTIL = 0.5;
  const cores = (perSec: number, us: number) => (perSec * us) / 1e6;
  /** Sockets one gateway process holds (its nofile limit: compose.yaml sets 200,000). */
  const SOCKETS_PER_GATEWAY = 150_000;
  const gwJoinCores = cores(t.joins, f.gatewayUs);
  // Position updates: at worst every waiting socket hears one a second (admission each second).
  const gwFanoutCores = cores(t.sockets, f.fanoutUs);
  const gwProcs = Math.max(Math.ceil((gwJoinCores + gwFanoutCores) / UTIL), Math.ceil(t.sockets / SOCKETS_PER_GATEWAY), 2);
  const gwMem = t.sockets * f.perSocket + gwProcs * f.baseRss;
  const redisCores = cores(t.joins, f.redisUs);
  const hotRoomShare = cores(t.joins, f.redisUs); // one room is one slot: all its joins on one master
  const masters = Math.max(3, Math.ceil(redisCores / UTIL));
  const redisMem = t.sockets * f.bytesPerVisitor;
  const pgCores = cores(t.reservations, f.pgUs);
  const coCores = cores(t.reservations, f.coUs);
  const coProcs = Math.max(2, Math.ceil(coCores / UTIL));
  const GiB = 2 ** 30;
  const lines: [string, string, string][] = [
    ['gateway', `${gwProcs} processes (1 core each)`,
      `joins ${fmt(t.joins, 0)}/s x ${fmt(f.gatewayUs)} µs = ${fmt(gwJoinCores)} cores; updates ${fmt(t.sockets, 0)} sockets/s x ${fmt(f.fanoutUs, 2)} µs = ${fmt(gwFanoutCores)} cores; ` +
      `<= ${fmt(SOCKETS_PER_GATEWAY, 0)} sockets each; memory ${fmt(t.sockets, 0)} x ${fmt(f.perSocket, 0)} B + ${gwProcs} x ${fmt(f.baseRss / 2 ** 20, 0)} MiB = ${fmt(gwMem / GiB, 1)} GiB in all`],
    ['Redis masters', `${masters} masters + ${masters} replicas`,
      `${fmt(t.joins, 0)}/s x ${fmt(f.redisUs)} µs = ${fmt(redisCores)} cores over the masters; one room is one slot, so a single room at ${fmt(t.joins, 0)}/s takes ${fmt(hotRoomShare)} of its master's one core ` +
      `(${hotRoomShare <= UTIL ? 'fits' : 'TOO MUCH for one master: spread the drop over several rooms'}); memory ${fmt(t.sockets, 0)} waiting x ${fmt(f.bytesPerVisitor, 0)} B = ${fmt(redisMem / GiB, 2)} GiB over the masters (as much on the replicas)`],
    ['Redis replicas', `1 per master`, `${fmt(cores(t.joins, f.replicaUs))} cores over the replicas (${fmt(f.replicaUs)} µs per join)`],
    ['checkout', `${coProcs} processes`, `${fmt(t.reservations, 0)} reservations/s x ${fmt(f.coUs, 0)} µs = ${fmt(coCores)} cores`],
    ['Postgres', `${Math.max(2, Math.ceil(pgCores / UTIL))} cores (one primary)`, `${fmt(t.reservations, 0)} reservations/s x ${fmt(f.pgUs, 0)} µs = ${fmt(pgCores)} cores`],
  ];
  const w0 = Math.max(...lines.map((l) => l[0].length));
  const w1 = Math.max(...lines.map((l) => l[1].length));
  return [
    `Capacity for ${fmt(t.joins, 0)} joins/s, ${fmt(t.sockets, 0)} waiting sockets, ${fmt(t.reservations, 0)} reservations/s (every core at most ${UTIL * 100} % busy):`,
    ...lines.map(([a, b, c]) => `  ${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, joins: { type: 'string' }, sockets: { type: 'string' }, reservations: { type: 'string' } } });
  run({ quick: values.quick, joinsPerSec: values.joins ? Number(values.joins) : undefined, sockets: values.sockets ? Number(values.sockets) : undefined, reservationsPerSec: values.reservations ? Number(values.reservations) : undefined }).then(
    async (rows) => { const { formatTable } = await import('./lib/table.js'); console.log(`\n${formatTable(rows)}`); process.exit(0); },
    (e: unknown) => { console.error(e); process.exit(1); },
  );
}
