/**
 * Reservations per second against ONE hot sale, through the HTTP API, durable commits on
 * (`synchronous_commit = on`), ours vs the classic flash-sale tutorial side by side:
 *
 *   baseline: one transaction per buyer: SELECT ... FOR UPDATE on the stock row, UPDATE, INSERT
 *   ours:     checkout's reservation route (group commit: the requests that arrive together
 *             are decided in one transaction with one guarded UPDATE)
 *
 * Both servers run in their own child process with the same pool size, the same session
 * check and the same admission-token verification (Ed25519 via libsodium, JWKS over HTTP),
 * against the same database. Each buyer is a distinct user with a fresh token (signed before
 * the phase, so the load generator's CPU stays out of it). Three rounds of every phase, each
 * round's two sides back to back; figures are medians (one round with --quick). A final
 * sell-out run (1,200 buyers for 800 units at 64 concurrent) and the counters after every
 * run count oversold units. CPU per reservation is printed for the server and for the whole
 * machine (load generator, server and Postgres share its cores).
 *
 *   npx tsx bench/checkout.ts [--quick]
 */
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { Pool as HttpPool } from 'undici';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../shared/config.js';
import { dropPrefix } from '../shared/redis.js';
import { createSessions } from '../checkout/accounts.js';
import { createAdmissionVerifier } from '../checkout/admission.js';
import { ensurePostgres, createDatabaseIfMissing } from '../checkout/postgres.js';
import { startCheckout } from '../checkout/main.js';
import { median } from './lib/table.js';
import type { BenchRow } from './types.js';

const SELF = fileURLToPath(import.meta.url);
/** `BENCH_CHECKOUT_BUYERS=8,16` runs only those (e.g. to profile one with BENCH_CPU_PROF=dir). */
const CONCURRENCY = (process.env.BENCH_CHECKOUT_BUYERS ?? '8,16,32,64').split(',').map(Number);
const POOL_SIZE = 10;
const SELL_OUT = { buyers: 1200, units: 800 };
export const SESSION_SECRET = 'bench-session-secret';
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

// ---------------------------------------------------------------- servers (child processes)

/** The tutorial's route: one transaction per buyer on the hot row. Same checks before it as ours. */
async function serveBaseline(config: Config): Promise<string> {
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: POOL_SIZE });
  const sessions = createSessions(config.sessionSecret, Date.now);
  const admission = createAdmissionVerifier(config.jwksUrl, Date.now);
  const app = Fastify({ logger: false });
  app.post<{ Params: { sale: string } }>('/api/sales/:sale/reservations', async (req, reply) => {
    const auth = req.headers.authorization ?? '';
    const userId = sessions.verify(auth.slice(7));
    if (!userId) return reply.code(401).send({ error: 'unauthenticated', message: 'Log in first.' });
    const v = await admission.verify(String(req.headers['x-admission-token'] ?? ''), req.params.sale);
    if (!v.ok) return reply.code(403).send({ error: v.code, message: v.reason });
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      const { rows } = await c.query('SELECT available, reservation_seconds FROM sales WHERE id = $1 FOR UPDATE', [req.params.sale]);
      if (!rows[0] || rows[0].available <= 0) {
        await c.query('ROLLBACK');
        return reply.code(409).send({ error: 'sold_out', message: 'Every unit is taken right now.' });
      }
      await c.query('UPDATE sales SET available = available - 1, reserved = reserved + 1 WHERE id = $1', [req.params.sale]);
      const expiresAt = new Date(Date.now() + rows[0].reservation_seconds * 1000);
      const ins = await c.query(
        `INSERT INTO reservations (sale_id, user_id, jti, room, visitor_id, status, expires_at)
         VALUES ($1, $2, $3, $4, $5, 'reserved', $6) RETURNING id`,
        [req.params.sale, userId, v.claims.jti, v.claims.room, v.claims.sub, expiresAt],
      );
      await c.query('COMMIT');
      return reply.code(201).send({ reservationId: ins.rows[0].id, status: 'reserved', expiresAt: expiresAt.toISOString() });
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      if ((e as { code?: string }).code === '23505') return reply.code(409).send({ error: 'already_purchased', message: 'duplicate' });
      throw e;
    } finally {
      c.release();
    }
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
}

async function serve(mode: string) {
  const config = loadConfig(JSON.parse(process.env.BENCH_CHECKOUT_ENV ?? '{}'));
  const url = mode === 'baseline' ? await serveBaseline(config) : (await startCheckout(config, { port: 0, poolSize: POOL_SIZE, reserveInFlight: Number(process.env.BENCH_RESERVE_IN_FLIGHT) || undefined })).url;
  process.send!({ url });
  process.on('message', () => process.send!({ cpu: process.cpuUsage() }));
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

/** CPU time (µs) the whole machine has spent busy so far (every process: load, servers, Postgres). */
function machineBusyUs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f as number[];
  return ((user! + nice! + system! + irq! + softirq! + (steal ?? 0)) * 1e6) / 100; // USER_HZ ticks
}

/** CPU time (µs) the server process has used so far. */
function cpuOf(proc: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    proc.once('message', (m: { cpu: NodeJS.CpuUsage }) => resolve(m.cpu.user + m.cpu.system));
    proc.send({ cpu: true });
  });
}

export function startServer(mode: 'ours' | 'baseline', env: Record<string, string>): Promise<{ proc: ChildProcess; url: string }> {
  const proc = fork(SELF, ['--serve', mode], {
    execArgv: ['--import', import.meta.resolve('tsx'), ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [])],
    env: { ...process.env, BENCH_CHECKOUT_ENV: JSON.stringify(env) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${mode} server did not start in 60 s`)), 60_000);
    proc.once('exit', (code) => reject(new Error(`${mode} server exited (${code})`)));
    proc.once('message', (m: { url: string }) => {
      clearTimeout(timer);
      resolve({ proc, url: m.url });
    });
  });
}

// ---------------------------------------------------------------- load (this process)

export interface Buyer {
  userId: string;
  session: string;
  /** Admission token, signed before the phase so the load generator's CPU stays out of it. */
  token?: string;
}

export function sessionFor(userId: string): string {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: userId, iss: 'checkout', aud: 'checkout-session', iat: now, exp: now + 3600 })}`;
  return `${input}.${crypto.createHmac('sha256', SESSION_SECRET).update(input).digest('base64url')}`;
}

export function makeSigner() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const kid = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const jwks = JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'EdDSA', use: 'sig' }] });
  const header = b64({ alg: 'EdDSA', kid });
  return {
    jwks,
    sign(sale: string, sub: string): string {
      const now = Math.floor(Date.now() / 1000);
      const input = `${header}.${b64({ iss: 'waiting-room', aud: 'checkout', sub, room: sale, sale, ticket: 1, jti: crypto.randomUUID(), iat: now, exp: now + 600 })}`;
      return `${input}.${crypto.sign(null, Buffer.from(input), privateKey).toString('base64url')}`;
    },
  };
}

/** `concurrency` buyers reserve back to back for `ms`; each request is a new user with a new token. */
export async function phase(url: string, sale: string, buyers: Buyer[], concurrency: number, opts: { ms?: number; count?: number }, sign: (sale: string, sub: string) => string) {
  const client = new HttpPool(url, { connections: concurrency, pipelining: 1 });
  let next = 0;
  const counts = { reserved: 0, sold_out: 0, other: 0 };
  const start = performance.now();
  const deadline = start + (opts.ms ?? Infinity);
  const limit = Math.min(opts.count ?? Infinity, buyers.length);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline && next < limit) {
        const b = buyers[next++]!;
        const res = await client.request({
          method: 'POST',
          path: `/api/sales/${sale}/reservations`,
          headers: { authorization: `Bearer ${b.session}`, 'x-admission-token': b.token ?? sign(sale, `v-${b.userId}`) },
        });
        await res.body.dump();
        if (res.statusCode === 201) counts.reserved++;
        else if (res.statusCode === 409) counts.sold_out++;
        else counts.other++;
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  await client.close();
  // Out of prepared buyers before the deadline: the phase was just shorter; its rate stands.
  return { ...counts, used: next, seconds, perSecond: counts.reserved / seconds, ranOut: opts.count === undefined && next >= buyers.length };
}

// ---------------------------------------------------------------- the run

export async function run(opts: { quick?: boolean; log?: (line: string) => void } = {}): Promise<BenchRow[]> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const phaseMs = opts.quick ? 1500 : 2500;
  const base = loadConfig(process.env);
  const pgInfo = await ensurePostgres(base, (m) => log(m));
  const dbName = `bench_checkout_${crypto.randomUUID().slice(0, 8)}`;
  const admin = new URL(pgInfo.databaseUrl);
  admin.pathname = '/postgres';
  await createDatabaseIfMissing(admin.toString(), dbName);
  const dbUrl = new URL(pgInfo.databaseUrl);
  dbUrl.pathname = `/${dbName}`;
  const signer = makeSigner();
  const jwksServer = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(signer.jwks));
  await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
  const prefix = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const env = {
    DATABASE_URL: dbUrl.toString(),
    JWKS_URL: `http://127.0.0.1:${(jwksServer.address() as { port: number }).port}/.well-known/jwks.json`,
    REDIS_URL: base.redisUrl,
    REDIS_PREFIX: prefix,
    SESSION_SECRET,
    LOG_LEVEL: 'silent',
  };
  const servers: ChildProcess[] = [];
  const db = new pg.Client({ connectionString: env.DATABASE_URL });
  try {
    // Both start at once; ours runs the migrations, the baseline only needs the tables later.
    const [ours, baseline] = await Promise.all([startServer('ours', env), startServer('baseline', env)]);
    servers.push(ours.proc, baseline.proc);
    const T0 = Date.now();
    await db.connect();
    const sc = (await db.query('SHOW synchronous_commit')).rows[0].synchronous_commit;
    log(`synchronous_commit = ${sc}; phases of ${phaseMs} ms; pool ${POOL_SIZE} per server`);
    const PER_PHASE = opts.quick ? 6_000 : 12_000;
    const ROUNDS = Number(process.env.BENCH_ROUNDS) || (opts.quick ? 1 : 3); // BENCH_ROUNDS=5: more rounds per concurrency
    const WARM = 2000;
    const BUYERS = PER_PHASE * CONCURRENCY.length * 2 * ROUNDS + 2 * WARM;
    const { rows } = await db.query<{ id: string }>(
      `INSERT INTO users (email, password_hash) SELECT 'bench' || g || '@example.com', 'x' FROM generate_series(1, $1::int) g RETURNING id`,
      [BUYERS + 2 * SELL_OUT.buyers],
    );
    const all: Buyer[] = rows.map((r) => ({ userId: r.id, session: sessionFor(r.id) }));
    const sellOutBuyers = { ours: all.splice(0, SELL_OUT.buyers), baseline: all.splice(0, SELL_OUT.buyers) };
    const now = Date.now();
    for (const [id, total] of [['hot-ours', 10_000_000], ['hot-base', 10_000_000], ['out-ours', SELL_OUT.units], ['out-base', SELL_OUT.units]] as const) {
      await db.query(
        `INSERT INTO sales (id, name, price_cents, currency, total, available, starts_at, ends_at, reservation_seconds)
         VALUES ($1, $1, 100, 'EUR', $2, $2, $3, $4, 600)`,
        [id, total, new Date(now - 60_000), new Date(now + 3600_000)],
      );
    }
    let cursor = 0;
    const take = (n: number) => {
      const slice = all.slice(cursor, cursor + n);
      cursor += n;
      return slice;
    };
    // Warm both (JIT, JWKS fetch, pools).
    await phase(baseline.url, 'hot-base', take(WARM), 16, { count: WARM }, signer.sign);
    await phase(ours.url, 'hot-ours', take(WARM), 16, { count: WARM }, signer.sign);
    log(`set up in ${((Date.now() - T0) / 1000).toFixed(1)} s`);

    const rowsOut: BenchRow[] = [];
    /** Mean requests per reservation transaction so far (ours), from its /metrics. */
    const batchMean = async (url: string) => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const num = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
      return { sum: num('checkout_reserve_batch_size_sum'), count: num('checkout_reserve_batch_size_count') };
    };
    const measured = async (proc: ChildProcess, url: string, sale: string, c: number) => {
      const buyers = all.slice(cursor, cursor + PER_PHASE);
      for (const b of buyers) b.token = signer.sign(sale, `v-${b.userId}`);
      const cpu0 = await cpuOf(proc);
      const busy0 = machineBusyUs();
      const r = await phase(url, sale, buyers, c, { ms: phaseMs }, signer.sign);
      const cpuUs = (await cpuOf(proc)) - cpu0;
      const busyUs = machineBusyUs() - busy0;
      cursor += r.used;
      return { ...r, cpuPerReservationUs: cpuUs / Math.max(1, r.reserved), machinePerReservationUs: busyUs / Math.max(1, r.reserved) };
    };
    // Rounds: every concurrency, baseline and ours back to back (which goes first alternates),
    // ROUNDS times over; a figure is the median of its rounds, the ratio the median of each
    // round's ours/baseline (the two sides of one round share the machine's mood).
    type Run = Awaited<ReturnType<typeof measured>> & { meanBatch?: number };
    const runs = new Map<number, { b: Run[]; o: Run[] }>(CONCURRENCY.map((c) => [c, { b: [], o: [] }]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const c of CONCURRENCY) {
        const sides = [
          async () => runs.get(c)!.b.push(await measured(baseline.proc, baseline.url, 'hot-base', c)),
          async () => {
            const m0 = await batchMean(ours.url);
            const o: Run = await measured(ours.proc, ours.url, 'hot-ours', c);
            const m1 = await batchMean(ours.url);
            o.meanBatch = (m1.sum - m0.sum) / Math.max(1, m1.count - m0.count);
            runs.get(c)!.o.push(o);
          },
        ];
        for (const side of round % 2 ? sides : sides.reverse()) await side();
        const b = runs.get(c)!.b.at(-1)!;
        const o = runs.get(c)!.o.at(-1)!;
        log(`round ${round}/${ROUNDS}, ${String(c).padStart(2)} buyers: baseline ${b.perSecond.toFixed(0).padStart(5)}/s (CPU each: server ${b.cpuPerReservationUs.toFixed(0)} µs, machine ${b.machinePerReservationUs.toFixed(0)} µs)   ` +
          `ours ${o.perSecond.toFixed(0).padStart(5)}/s (CPU each: server ${o.cpuPerReservationUs.toFixed(0)} µs, machine ${o.machinePerReservationUs.toFixed(0)} µs; ${o.meanBatch!.toFixed(1)} per transaction)   ratio ${(o.perSecond / b.perSecond).toFixed(2)}x` +
          (b.other + o.other ? `   (non-201/409 answers: baseline ${b.other}, ours ${o.other})` : '') +
          (o.ranOut ? `   (ours used all ${PER_PHASE} prepared buyers in ${o.seconds.toFixed(1)} s)` : ''));
      }
    }
    for (const c of CONCURRENCY) {
      const { b, o } = runs.get(c)!;
      const ratio = median(o.map((x, i) => x.perSecond / b[i]!.perSecond));
      const [ob, bb] = [median(o.map((x) => x.perSecond)), median(b.map((x) => x.perSecond))];
      log(`${String(c).padStart(2)} buyers, median of ${ROUNDS}: baseline ${bb.toFixed(0)}/s, ours ${ob.toFixed(0)}/s, ratio ${ratio.toFixed(2)}x ` +
        `(rounds: ${o.map((x, i) => (x.perSecond / b[i]!.perSecond).toFixed(2)).join(', ')})`);
      rowsOut.push({ figure: `reservations/s, one hot sale, ${c} concurrent buyers (checkout)`, ours: Math.round(ob), baseline: Math.round(bb), ratio: Number(ratio.toFixed(2)), target: '>= 3x baseline', met: ratio >= 3 });
      if (c === CONCURRENCY[0]) {
        // The steadier figure where the machine's CPU is the limit: all of it, per reservation.
        const [om, bm] = [median(o.map((x) => x.machinePerReservationUs)), median(b.map((x) => x.machinePerReservationUs))];
        rowsOut.push({ figure: `machine CPU per reservation, ${c} buyers (µs; load + server + Postgres) (checkout)`, ours: Math.round(om), baseline: Math.round(bm), ratio: Number((bm / om).toFixed(2)), target: 'info', met: null });
      }
    }

    // Sell-out: more buyers than units, 64 at once. Oversold = rows beyond the stock or counters that disagree.
    await phase(baseline.url, 'out-base', sellOutBuyers.baseline, 64, { count: SELL_OUT.buyers }, signer.sign);
    await phase(ours.url, 'out-ours', sellOutBuyers.ours, 64, { count: SELL_OUT.buyers }, signer.sign);
    const oversold = async (sale: string) => {
      const r = await db.query(
        `SELECT s.total, s.available, s.reserved, s.sold,
                (SELECT count(*)::int FROM reservations WHERE sale_id = s.id AND status IN ('reserved', 'payment_pending', 'paid')) AS held
         FROM sales s WHERE id = $1`,
        [sale],
      );
      const s = r.rows[0];
      return Math.max(0, s.held - s.total) + Math.max(0, -s.available) + (s.available + s.reserved + s.sold === s.total ? 0 : 1) + Math.abs(s.held - s.reserved - s.sold);
    };
    const [oo, ob] = [await oversold('out-ours'), await oversold('out-base')];
    const hot = [await oversold('hot-ours'), await oversold('hot-base')];
    log(`oversold units: ours ${oo + hot[0]!}, baseline ${ob + hot[1]!} (sell-out run of ${SELL_OUT.buyers} buyers for ${SELL_OUT.units} units, plus the throughput runs)`);
    rowsOut.push({ figure: 'oversold units after all runs (checkout)', ours: oo + hot[0]!, baseline: ob + hot[1]!, ratio: null, target: '0 for ours', met: oo + hot[0]! === 0 });
    log('reproduce: npx tsx bench/checkout.ts' + (opts.quick ? ' --quick' : ''));
    return rowsOut;
  } finally {
    for (const p of servers) p.kill('SIGTERM');
    await Promise.all(servers.map((p) => (p.exitCode === null ? new Promise((r) => p.once('exit', r)) : null)));
    await db.end().catch(() => {});
    jwksServer.close();
    const c = new pg.Client({ connectionString: admin.toString() });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await c.end();
    const r = new Redis(base.redisUrl);
    await dropPrefix(r, prefix);
    r.disconnect();
    await pgInfo.stop();
  }
}

if (process.argv[2] === '--serve') {
  await serve(process.argv[3] ?? 'ours');
} else if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await run({ quick: process.argv.includes('--quick') });
  console.table(rows);
}
