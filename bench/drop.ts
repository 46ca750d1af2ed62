/**
 * bench/drop: an end-to-end drop, from open to sold out: 50,000 visitors, 500 units
 * (`--quick`: 5,000 and 50), run with stock-aware admission (overbook 1, docs/api.md section 7)
 * and with admission blind to the stock (the behaviour before issue 13) side by side, several
 * rounds each (the arms alternate which goes first), reporting medians. The real gateway and
 * checkout run in their own child processes with their own Redis prefix and Postgres database
 * (load-tests/replay/product.ts); this process is the crowd. Every drop has its own room and sale.
 *
 * What the crowd does: shoppers sign up and log in before the sale (accounts exist before drop
 * day; scrypt is not on the clock). The room lets at most 100 shoppers into checkout at once
 * (maxActive) and admits the next as orders end. At open, every visitor joins over HTTP
 * (a new visitor per request, no cookie) from 256 keep-alive connections, each bound to its own
 * 127.0.0.0/8 address. The visitors do NOT hold WebSockets: a claimer polls the room's
 * `admittedThrough` and claims admitted tickets in order (POST /claim with x-visitor-id), then
 * each admitted visitor reserves with its token at once (a prompt shopper), pays (`test_ok`) and
 * polls the purchase. In the "ghosts" scenario a share of the visitors, once admitted, never come
 * back (they neither claim nor reserve: their claims lapse after claimSeconds). The clock stops
 * when the room reports `sold_out` (every unit paid).
 *
 * Reported, stock-aware (ours) against blind (baseline): open -> sold out, admitted per unit
 * sold, admitted shoppers told `sold_out` at the till and how many of them had reserved within
 * claimSeconds of admission (with overbook 1 the contract says none), and for the prompt crowd
 * joins/s, join p99, the fairness figure (Kendall tau between send order and the admitted
 * ticket; overtakes), units sold and the audit. Goal (issue 13): no prompt shopper refused, and
 * the sale sells out no slower than with blind admission.
 *
 * Blind admission: PUT /admin/rooms accepts overbook 1-10 (docs/api.md section 7), and 10 still
 * caps admissions near the end of a sale. The blind arm stores its room with overbook 10 through
 * the API and then overwrites the stored config's overbook with 1,000,000 (ceil(available ×
 * 10^6) never binds while a unit is available: the cap is gone, which is what the room did before
 * it knew the stock); the gateway reloads it within a second and the bench checks it did.
 *
 *   npx tsx bench/drop.ts [--quick] [--rounds N] [--visitors N --stock N --max-active N]
 *                         [--ghosts X] [--claim-seconds S]
 */
import { pathToFileURL } from 'node:url';
import http from 'node:http';
import type { BenchRow } from './types.js';
import { median } from './lib/table.js';
import { startProduct, type Product } from '../load-tests/replay/product.js';
import { request } from '../load-tests/replay/http.js';
import { audit, jwtPayload, purchase, putRoom, putSale, roomState, signIn, type Targets } from '../load-tests/replay/api.js';
import { fairness, percentiles } from '../load-tests/replay/report.js';
import { isGhost } from '../load-tests/replay/shard.js';
import { createRedisClient } from '../shared/redis.js';
import { roomKeys } from '../shared/keys.js';

export const COMMAND = 'npx tsx bench/drop.ts';
const HUGE = { capacity: 10_000_000, refillPerSec: 10_000_000 };
const BROWSER = {
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
  accept: 'application/json', 'accept-language': 'en-US,en;q=0.9',
};
/** The overbook the blind arm's stored config gets: no cap while a unit is available. */
export const BLIND_OVERBOOK = 1_000_000;

interface Joined {
  seq: number;
  sentAt: number;
  ticket: number | null;
  vid: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function pool<T>(n: number, items: T[], f: (item: T, worker: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async (_, w) => {
    while (next < items.length) await f(items[next++]!, w);
  }));
}
export interface DropOptions {
  quick?: boolean;
  log?: (line: string) => void;
  /** Default 50,000 (quick: 5,000). */
  visitors?: number;
  /** Default 500 (quick: 50). */
  stock?: number;
  /** The room's maxActive: shoppers inside checkout at once (default 100: checkout's capacity, not the stock). */
  maxActive?: number;
  /** Rounds of each arm (default 3). */
  rounds?: number;
  /** The ghost scenario's share of visitors who never come back once admitted (default 0.1; 0 skips the scenario). */
  ghosts?: number;
  /** claimSeconds of every room (default 10, the shortest the room allows: ghosts hold a place that long). */
  claimSeconds?: number;
}

export type Arm = 'stock-aware' | 'blind';

/** What one drop measured. */
export interface DropRun {
  arm: Arm;
  ghosts: number;
  /** Seconds from open to the room's sold_out (NaN when it did not sell out). */
  soldOutSec: number;
  joinsPerSec: number;
  joinP99: number;
  tau: number;
  overtakes: number;
  sold: number;
  auditOk: boolean;
  joinErrors: number;
  /** The room's admittedThrough at the end. */
  admitted: number;
  /** Admitted shoppers whose reservation was answered sold_out. */
  metSoldOut: number;
  /** Of those, the ones who sent it within claimSeconds of their admission (the token's iat). */
  promptMetSoldOut: number;
  /** Admitted ghosts (never claimed). */
  ghostsAdmitted: number;
}

interface DropSpec {
  visitors: number;
  stock: number;
  maxActive: number;
  claimSeconds: number;
  ghosts: number;
  arm: Arm;
  deadlineMs: number;
  tag: string;
}

/** Store the room's overbook as BLIND_OVERBOOK (beyond what the API accepts) and wait until the gateway uses it. */
async function makeBlind(product: Product, room: string): Promise<void> {
  const redis = createRedisClient(product.config);
  try {
    const key = roomKeys(product.prefix, room).cfg;
    const cfg = JSON.parse((await redis.get(key)) ?? 'null');
    if (!cfg) throw new Error(`no stored config for room ${room}`);
    await redis.set(key, JSON.stringify({ ...cfg, overbook: BLIND_OVERBOOK }));
  } finally {
    redis.disconnect();
  }
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await request(`${product.gateway}/admin/rooms/${room}`, { headers: { authorization: `Bearer ${product.adminToken}` } });
    if (r.json?.overbook === BLIND_OVERBOOK) return;
    if (Date.now() > deadline) throw new Error(`the gateway did not take the blind config of ${room}: ${r.status} overbook ${r.json?.overbook}`);
    await sleep(200);
  }
}

/** One drop against a running product, in its own room and sale. */
export async function dropOnce(product: Product, spec: DropSpec, log: (l: string) => void): Promise<DropRun> {
  const { visitors, stock, maxActive } = spec;
  const connections = 256;
  const t: Targets = product;
  const room = `drop-${spec.tag}`;
  await putSale(t, room, { total: stock, name: 'Drop benchmark' });

  // Accounts before the drop: sessions ready for whoever is admitted (a refused shopper's
  // account shops again, so a unit sold and a shopper inside checkout each need one at most).
  const sessions: string[] = [];
  await pool(8, Array.from({ length: stock + maxActive + 20 }, (_, i) => i), async (i) => {
    const s = await signIn(product.checkout, `${room}-${i}@bench.test`);
    if (!('session' in s)) throw new Error(`sign-in ${i} failed: ${JSON.stringify(s)}`);
    sessions.push(s.session);
  });

  const openAt = Date.now() + 3_000;
  await putRoom(t, room, {
    sale: room, opensAt: new Date(openAt).toISOString(), prequeueSeconds: 60, admitRatePerMin: 60_000, maxActive,
    overbook: spec.arm === 'blind' ? 10 : 1, claimSeconds: spec.claimSeconds,
    checkoutUrl: `${product.checkout}/sales/${room}`, limits: { ip: HUGE, subnet: HUGE, room: HUGE }, captcha: { mode: 'off', threshold: 50 },
  });
  if (spec.arm === 'blind') await makeBlind(product, room);
  const agents = Array.from({ length: connections }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  const addr = (w: number) => `127.77.${Math.floor(w / 250)}.${1 + (w % 250)}`;
  await sleep(Math.max(0, openAt - Date.now() + 50));

  // The crowd joins (timed from open).
  const byTicket = new Map<number, Joined>();
  const joined: Joined[] = [];
  const latencies: number[] = [];
  let errors = 0;
  let soldOutJoins = 0;
  const errorKinds = new Map<string, number>();
  let seq = 0;
  let sentAll = false;
  const t0 = performance.now();
  const crowd = pool(connections, Array.from({ length: visitors }, (_, i) => i), async (_i, w) => {
    const j: Joined = { seq: seq++, sentAt: performance.now(), ticket: null, vid: '' };
    const r = await request(`${product.gateway}/api/rooms/${room}/join`, { headers: BROWSER, body: {}, localAddress: addr(w), agent: agents[w] })
      .catch((e: Error) => e);
    latencies.push(performance.now() - j.sentAt);
    if (r instanceof Error || r.status !== 200) {
      // After the sell-out a join is told so (409 sold_out): an answer, not an error.
      if (!(r instanceof Error) && r.status === 409) return void soldOutJoins++;
      errors++;
      const kind = r instanceof Error ? r.message.slice(0, 60) : `${r.status} ${r.json?.error ?? ''}`;
      errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
      return;
    }
    j.ticket = typeof r.json.ticket === 'number' ? r.json.ticket : null;
    j.vid = r.json.visitorId;
    joined.push(j);
    if (j.ticket !== null) byTicket.set(j.ticket, j);
  }).then(() => {
    sentAll = true;
  });
  const joinSeconds = crowd.then(() => (performance.now() - t0) / 1000);

  // Claim admitted tickets in order and buy; ghosts never come back.
  const admittedTicket = new Map<number, number>(); // seq -> ticket claim of its token
  const buyFailures = new Map<string, number>();
  const note = (k: string): void => void buyFailures.set(k, (buyFailures.get(k) ?? 0) + 1);
  const claimMs = spec.claimSeconds * 1000;
  let nextTicket = 1;
  let bought = 0;
  let metSoldOut = 0;
  let promptMetSoldOut = 0;
  let ghostsAdmitted = 0;
  let claimRetried = 0;
  let soldOutAt: number | null = null;
  let lastProgress = 0;
  const buying: Promise<void>[] = [];
  const deadline = Date.now() + spec.deadlineMs;
  while (Date.now() < deadline) {
    const st = await roomState(t, room).catch(() => null);
    if (st?.state === 'sold_out') {
      soldOutAt = performance.now();
      break;
    }
    const through = Number(st?.admittedThrough ?? 0);
    const batch: Joined[] = [];
    while (nextTicket <= through && byTicket.has(nextTicket)) {
      const j = byTicket.get(nextTicket)!;
      if (isGhost(String(j.seq), spec.ghosts)) {
        nextTicket++;
        ghostsAdmitted++;
        continue;
      }
      if (sessions.length - batch.length <= 0) break;
      batch.push(j);
      nextTicket++;
    }
    for (const j of batch) {
      const session = sessions.pop()!;
      buying.push((async () => {
        let c = await request(`${product.gateway}/api/rooms/${room}/claim`, { headers: { ...BROWSER, 'x-visitor-id': j.vid }, body: {} });
        // 409 not_yet: its admission was withdrawn before the claim got through (undelivered for the
        // room's delivery window); it is next in line, and asks again as the queue page does.
        if (c.status === 409) claimRetried++;
        while (c.status === 409 && c.json?.error === 'not_yet' && Date.now() < deadline && soldOutAt === null) {
          await sleep(250);
          c = await request(`${product.gateway}/api/rooms/${room}/claim`, { headers: { ...BROWSER, 'x-visitor-id': j.vid }, body: {} });
        }
        if (c.status !== 200) return void note(`claim ${c.status}`);
        const claims = jwtPayload(c.json.token);
        if (typeof claims?.ticket === 'number') admittedTicket.set(j.seq, claims.ticket);
        let reserveSentAt = 0;
        // A browser polls its result about once a second.
        const p = await purchase(product.checkout, room, session, c.json.token, `drop-${j.seq}`, { pollMs: 1000, deadline, onReserve: () => (reserveSentAt = Date.now()) });
        if (p.kind === 'success') bought++;
        else {
          note(`${p.step} ${p.code}`);
          if (p.step === 'reserve' && p.code === 'sold_out') {
            metSoldOut++;
            // iat is in whole seconds (rounded down): the delay is over-, never under-estimated.
            if (typeof claims?.iat === 'number' && reserveSentAt - claims.iat * 1000 <= claimMs) promptMetSoldOut++;
          }
          // Refused at the reservation: no order for this account, it can shop again (after a
          // later step failed its order may still be paid: the account is spent).
          if (p.step === 'reserve') sessions.push(session);
        }
      })().catch((e: Error) => note(e.message.replace(/[0-9a-f-]{36}/g, ':id').slice(0, 80))));
    }
    if (Date.now() - lastProgress > 1000) {
      lastProgress = Date.now();
      log(`drop ${spec.tag}: t+${((performance.now() - t0) / 1000).toFixed(1)} s joined ${joined.length}/${visitors} admittedThrough ${through} bought ${bought}/${stock} state ${st?.state}`);
    }
    await sleep(50);
  }
  await Promise.all(buying);
  await crowd;
  for (const a of agents) a.destroy();
  if (buyFailures.size) log(`drop ${spec.tag}: purchases that failed: ${JSON.stringify(Object.fromEntries(buyFailures))}`);
  if (soldOutAt === null) log(`drop ${spec.tag}: NOT sold out after ${Math.round((deadline - openAt) / 1000)} s (bought ${bought} of ${stock})`);
  const soldOutSec = soldOutAt === null ? NaN : (soldOutAt - t0) / 1000;

  // Fairness after open: send order vs the admitted ticket; never-admitted earlier arrivals count as skipped.
  const after = joined.filter((j) => j.ticket !== null && !isGhost(String(j.seq), spec.ghosts));
  const fair = fairness(after.map((j) => j.seq), after.map((j) => admittedTicket.get(j.seq) ?? null));
  const lat = percentiles(latencies);
  const a = await audit(t, room);
  const end = await roomState(t, room);
  const js = await joinSeconds;
  const run: DropRun = {
    arm: spec.arm, ghosts: spec.ghosts, soldOutSec, joinsPerSec: sentAll ? visitors / js : NaN, joinP99: lat.p99 ?? NaN,
    tau: fair.tau ?? NaN, overtakes: fair.overtakes, sold: Number(a.sold), auditOk: a.ok === true, joinErrors: errors,
    admitted: Number(end.admittedThrough), metSoldOut, promptMetSoldOut, ghostsAdmitted,
  };
  log(`drop ${spec.tag}: ${soldOutJoins} joins answered sold_out/closed; ${errors} failed${errors ? `: ${JSON.stringify(Object.fromEntries(errorKinds))}` : ''}`);
  log(`drop ${spec.tag}: sold out ${soldOutSec.toFixed(2)} s after open; ${bought} bought; ${run.admitted} admitted (${ghostsAdmitted} ghosts); ` +
    `${metSoldOut} admitted met sold_out (${promptMetSoldOut} prompt); ${claimRetried} claims answered not_yet (withdrawn); tau ${fair.tau}; audit ${a.ok === true ? 'ok' : JSON.stringify(a)}`);
  return run;
}

/** The command that reproduces a run with these options. */
export function commandFor(opts: DropOptions): string {
  const parts = [COMMAND];
  if (opts.quick) parts.push('--quick');
  if (opts.rounds !== undefined) parts.push(`--rounds ${opts.rounds}`);
  if (opts.visitors !== undefined) parts.push(`--visitors ${opts.visitors}`);
  if (opts.stock !== undefined) parts.push(`--stock ${opts.stock}`);
  if (opts.maxActive !== undefined) parts.push(`--max-active ${opts.maxActive}`);
  if (opts.ghosts !== undefined) parts.push(`--ghosts ${opts.ghosts}`);
  if (opts.claimSeconds !== undefined) parts.push(`--claim-seconds ${opts.claimSeconds}`);
  return parts.join(' ');
}

const lowerIsBetter = (ours: number, base: number) => (ours > 0 && Number.isFinite(base) ? round(base / ours) : null);

/** The table of a scenario: stock-aware (ours) against blind (baseline), medians over rounds. */
export function scenarioRows(label: string, runs: DropRun[], prompt: boolean, stock: number): BenchRow[] {
  const of = (arm: Arm) => runs.filter((r) => r.arm === arm);
  const med = (arm: Arm, f: (r: DropRun) => number) => round(median(of(arm).map(f)));
  const perUnit = (r: DropRun) => (r.sold ? r.admitted / r.sold : NaN);
  const ours = { soldOut: med('stock-aware', (r) => r.soldOutSec), perUnit: med('stock-aware', perUnit), met: med('stock-aware', (r) => r.metSoldOut), prompt: med('stock-aware', (r) => r.promptMetSoldOut) };
  const base = { soldOut: med('blind', (r) => r.soldOutSec), perUnit: med('blind', perUnit), met: med('blind', (r) => r.metSoldOut), prompt: med('blind', (r) => r.promptMetSoldOut) };
  const n = of('stock-aware').length;
  const rows: BenchRow[] = [
    // Medians over the rounds that sold out (the next row says how many did).
    { figure: `${label}: open -> sold out (s)`, ours: ours.soldOut, baseline: base.soldOut, ratio: lowerIsBetter(ours.soldOut, base.soldOut), target: '<= blind +10%', met: ours.soldOut <= base.soldOut * 1.1 },
    {
      figure: `${label}: rounds sold out within the deadline`, ours: of('stock-aware').filter((r) => Number.isFinite(r.soldOutSec)).length,
      baseline: of('blind').filter((r) => Number.isFinite(r.soldOutSec)).length, ratio: null, target: `${n} of ${n}`, met: of('stock-aware').every((r) => Number.isFinite(r.soldOutSec)),
    },
    { figure: `${label}: admitted per unit sold`, ours: ours.perUnit, baseline: base.perUnit, ratio: lowerIsBetter(ours.perUnit, base.perUnit), target: 'info', met: null },
    { figure: `${label}: admitted shoppers who met sold_out`, ours: ours.met, baseline: base.met, ratio: null, target: 'info', met: null },
    {
      figure: `${label}: of them reserved within claimSeconds`, ours: ours.prompt, baseline: base.prompt, ratio: null,
      target: `= 0 in all ${n} rounds`, met: of('stock-aware').every((r) => r.promptMetSoldOut === 0),
    },
  ];
  if (prompt) {
    rows.push(
      { figure: `${label}: joins/s (HTTP, 256 conns)`, ours: med('stock-aware', (r) => r.joinsPerSec), baseline: med('blind', (r) => r.joinsPerSec), ratio: null, target: 'info', met: null },
      { figure: `${label}: join p99 (ms)`, ours: med('stock-aware', (r) => r.joinP99), baseline: med('blind', (r) => r.joinP99), ratio: null, target: '< 250 ms', met: med('stock-aware', (r) => r.joinP99) < 250 },
      { figure: `${label}: fairness Kendall tau`, ours: med('stock-aware', (r) => r.tau), baseline: med('blind', (r) => r.tau), ratio: null, target: '>= 0.99', met: med('stock-aware', (r) => r.tau) >= 0.99 },
      { figure: `${label}: overtakes (pairs)`, ours: med('stock-aware', (r) => r.overtakes), baseline: med('blind', (r) => r.overtakes), ratio: null, target: 'info', met: null },
      {
        figure: `${label}: units sold`, ours: med('stock-aware', (r) => r.sold), baseline: med('blind', (r) => r.sold), ratio: null,
        target: `= stock in every round, audit ok`, met: runs.every((r) => r.auditOk && r.joinErrors === 0 && r.sold === stock),
      },
    );
  }
  return rows;
}

export async function run(opts: DropOptions = {}): Promise<BenchRow[]> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const visitors = opts.visitors ?? (opts.quick ? 5_000 : 50_000);
  const stock = opts.stock ?? (opts.quick ? 50 : 500);
  // The waiting room's job: let checkout see only as many shoppers as it can serve at once (what
  // it can serve, not what is in stock: matching maxActive to the stock is admission that knows it).
  const maxActive = opts.maxActive ?? 100;
  const rounds = opts.rounds ?? 3;
  const ghosts = opts.ghosts ?? 0.1;
  const claimSeconds = opts.claimSeconds ?? 10;
  const scenarios = ghosts > 0 ? [0, ghosts] : [0];
  log(`drop: ${visitors} visitors, ${stock} units, maxActive ${maxActive}, claimSeconds ${claimSeconds}; ${rounds} round(s) of stock-aware (overbook 1) and blind admission` +
    `${ghosts > 0 ? `, with a prompt crowd and with ${ghosts * 100}% ghosts` : ''}; starting gateway and checkout in their own processes`);
  log(`drop: reproduce with: ${commandFor(opts)}`);
  const product = await startProduct({ inProcess: false });
  const runs: DropRun[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const g of scenarios) {
        const arms: Arm[] = round % 2 === 0 ? ['stock-aware', 'blind'] : ['blind', 'stock-aware'];
        for (const arm of arms) {
          const tag = `${product.prefix}-${round}-${g ? 'g' : 'p'}-${arm === 'blind' ? 'b' : 's'}`;
          runs.push(await dropOnce(product, { visitors, stock, maxActive, claimSeconds, ghosts: g, arm, deadlineMs: opts.quick ? 120_000 : 300_000, tag }, log));
        }
      }
    }
  } finally {
    await product.close();
  }
  const label = `drop ${visitors / 1000}k visitors, ${stock} units`;
  return scenarios.flatMap((g) => scenarioRows(g ? `${label}, ${g * 100}% ghosts` : label, runs.filter((r) => r.ghosts === g), g === 0, stock));
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { formatTable } = await import('./lib/table.js');
  const { values } = (await import('node:util')).parseArgs({
    options: {
      quick: { type: 'boolean' }, visitors: { type: 'string' }, stock: { type: 'string' }, 'max-active': { type: 'string' },
      rounds: { type: 'string' }, ghosts: { type: 'string' }, 'claim-seconds': { type: 'string' },
    },
  });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const opts: DropOptions = {
    quick: values.quick, maxActive: num(values['max-active']), visitors: num(values.visitors), stock: num(values.stock),
    rounds: num(values.rounds), ghosts: num(values.ghosts), claimSeconds: num(values['claim-seconds']),
  };
  run(opts).then(
    (rows) => {
      process.stdout.write(`\n${formatTable(rows)}\n\nstock-aware = overbook 1; blind = no cap (the room before issue 13); medians of ${opts.rounds ?? 3} rounds\nreproduce: ${commandFor(opts)}\n`);
      process.exit(rows.some((r) => r.met === false) ? 1 : 0);
    },
    (e: Error) => {
      process.stderr.write(`bench/drop failed: ${e.stack ?? e.message}\n`);
      process.exit(1);
    },
  );
}
