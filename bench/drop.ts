/**
 * bench/drop: an end-to-end drop, from open to sold out: 50,000 visitors, 500 units
 * (`--quick`: 5,000 and 50). The real gateway and checkout run in their own child processes
 * with their own Redis prefix and Postgres database (load-tests/replay/product.ts); this
 * process is the crowd.
 *
 * What the crowd does: 500+ shoppers sign up and log in before the sale (accounts exist before
 * drop day; scrypt is not on the clock). The room lets at most min(stock, 100) shoppers into
 * checkout at once (maxActive) and admits the next as orders end. At open, every visitor joins
 * over HTTP (a new visitor per request, no cookie) from 256 keep-alive connections, each bound
 * to its own 127.0.0.0/8 address. The 50,000 do NOT hold WebSockets: a claimer polls the room's `admittedThrough` and
 * claims admitted tickets in order (POST /claim with x-visitor-id), then each admitted visitor
 * reserves with its token, pays (`test_ok`) and polls the purchase. The clock stops when the
 * room reports `sold_out` (and every unit is paid). Reported: the time, joins/s, join p99, the
 * fairness figure (Kendall tau between send order and the admitted ticket; overtakes), units
 * sold and the audit.
 *
 *   npx tsx bench/drop.ts [--quick] [--visitors N --stock N --max-active N]
 */
import { pathToFileURL } from 'node:url';
import http from 'node:http';
import type { BenchRow } from './types.js';
import { startProduct } from '../load-tests/replay/product.js';
import { request } from '../load-tests/replay/http.js';
import { audit, jwtPayload, purchase, putRoom, putSale, roomState, signIn, type Targets } from '../load-tests/replay/api.js';
import { fairness, percentiles } from '../load-tests/replay/report.js';

export const COMMAND = 'npx tsx bench/drop.ts';
const HUGE = { capacity: 10_000_000, refillPerSec: 10_000_000 };
const BROWSER = {
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
  accept: 'application/json', 'accept-language': 'en-US,en;q=0.9',
};

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
  /** The room's maxActive: shoppers inside checkout at once (default min(stock, 100)). */
  maxActive?: number;
}

export async function run(opts: DropOptions = {}): Promise<BenchRow[]> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const visitors = opts.visitors ?? (opts.quick ? 5_000 : 50_000);
  const stock = opts.stock ?? (opts.quick ? 50 : 500);
  // The waiting room's job: let checkout see only as many shoppers as it can serve at once.
  const maxActive = opts.maxActive ?? Math.min(stock, 100);
  const connections = 256;
  log(`drop: ${visitors} visitors, ${stock} units, maxActive ${maxActive}; starting gateway and checkout in their own processes`);
  const product = await startProduct({ inProcess: false });
  try {
    const t: Targets = product;
    const room = `drop-${product.prefix}`;
    await putSale(t, room, { total: stock, name: 'Drop benchmark' });

    // Accounts before the drop: sessions ready for whoever is admitted.
    const sessions: string[] = [];
    const signT0 = performance.now();
    await pool(8, Array.from({ length: stock + 20 }, (_, i) => i), async (i) => {
      const s = await signIn(product.checkout, `drop-${i}-${product.prefix}@bench.test`);
      if (!('session' in s)) throw new Error(`sign-in ${i} failed: ${JSON.stringify(s)}`);
      sessions.push(s.session);
    });
    log(`drop: ${sessions.length} shoppers signed in before the sale (${((performance.now() - signT0) / 1000).toFixed(1)} s, not timed)`);

    const openAt = Date.now() + 2_000;
    await putRoom(t, room, {
      sale: room, opensAt: new Date(openAt).toISOString(), prequeueSeconds: 60, admitRatePerMin: 60_000, maxActive,
      checkoutUrl: `${product.checkout}/sales/${room}`, limits: { ip: HUGE, subnet: HUGE, room: HUGE }, captcha: { mode: 'off', threshold: 50 },
    });
    const agents = Array.from({ length: connections }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    const addr = (w: number) => `127.77.${Math.floor(w / 250)}.${1 + (w % 250)}`;
    await sleep(Math.max(0, openAt - Date.now() + 50));

    // The crowd joins (timed from open).
    const joined: Joined[] = [];
    const byTicket = new Map<number, Joined>();
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

    // Claim admitted tickets in order and buy.
    const admittedTicket = new Map<number, number>(); // seq -> ticket claim of its token
    const buyFailures = new Map<string, number>();
    const note = (k: string): void => void buyFailures.set(k, (buyFailures.get(k) ?? 0) + 1);
    let nextTicket = 1;
    let bought = 0;
    let soldOutAt: number | null = null;
    let lastProgress = 0;
    const buying: Promise<void>[] = [];
    const deadline = Date.now() + (opts.quick ? 120_000 : 300_000);
    while (Date.now() < deadline) {
      const st = await roomState(t, room).catch(() => null);
      if (st?.state === 'sold_out') {
        soldOutAt = performance.now();
        break;
      }
      const through = Number(st?.admittedThrough ?? 0);
      const batch: Joined[] = [];
      while (nextTicket <= through && byTicket.has(nextTicket) && sessions.length - batch.length > 0) batch.push(byTicket.get(nextTicket++)!);
      for (const j of batch) {
        const session = sessions.pop()!;
        buying.push((async () => {
          const c = await request(`${product.gateway}/api/rooms/${room}/claim`, { headers: { ...BROWSER, 'x-visitor-id': j.vid }, body: {} });
          if (c.status !== 200) return void note(`claim ${c.status}`);
          const tk = jwtPayload(c.json.token)?.ticket;
          if (typeof tk === 'number') admittedTicket.set(j.seq, tk);
          // A browser polls its result about once a second.
          const p = await purchase(product.checkout, room, session, c.json.token, `drop-${j.seq}`, { pollMs: 1000, deadline });
          if (p.kind === 'success') bought++;
          else {
            note(`${p.step} ${p.code}`);
            sessions.push(session); // no order for this account: it can shop again
          }
        })().catch((e: Error) => note(e.message.replace(/[0-9a-f-]{36}/g, ':id').slice(0, 80))));
      }
      if (Date.now() - lastProgress > 1000) {
        lastProgress = Date.now();
        log(`drop: t+${((performance.now() - t0) / 1000).toFixed(1)} s joined ${joined.length}/${visitors} admittedThrough ${through} bought ${bought}/${stock} state ${st?.state}`);
      }
      await sleep(50);
    }
    await Promise.all(buying);
    await crowd;
    const joinSeconds = (performance.now() - t0) / 1000;
    for (const a of agents) a.destroy();
    if (buyFailures.size) log(`drop: purchases that failed: ${JSON.stringify(Object.fromEntries(buyFailures))}`);
    if (soldOutAt === null) log(`drop: NOT sold out after ${Math.round((deadline - openAt) / 1000)} s (bought ${bought} of ${stock})`);
    const soldOutSec = soldOutAt === null ? NaN : (soldOutAt - t0) / 1000;

    // Fairness after open: send order vs the admitted ticket; never-admitted earlier arrivals count as skipped.
    const after = joined.filter((j) => j.ticket !== null);
    const fair = fairness(after.map((j) => j.seq), after.map((j) => admittedTicket.get(j.seq) ?? null));
    const lat = percentiles(latencies);
    const a = await audit(t, room);
    const joinsPerSec = visitors / (sentAll ? joinSeconds : 1);
    log(`drop: ${soldOutJoins} joins answered sold_out/closed; ${errors} failed${errors ? `: ${JSON.stringify(Object.fromEntries(errorKinds))}` : ''}`);
    log(`drop: sold out ${soldOutSec.toFixed(2)} s after open; ${bought} bought; tau ${fair.tau}; overtakes ${fair.overtakes}; audit ${JSON.stringify(a)}`);
    const label = `${visitors / 1000}k visitors, ${stock} units`;
    return [
      { figure: `drop ${label}: open -> sold out (s)`, ours: round(soldOutSec), baseline: null, ratio: null, target: '< 30 s', met: soldOutSec < 30 },
      { figure: `drop ${label}: joins/s (HTTP, ${connections} conns)`, ours: Math.round(joinsPerSec), baseline: null, ratio: null, target: 'info', met: null },
      { figure: `drop ${label}: join p99 (ms)`, ours: round(lat.p99 ?? NaN), baseline: null, ratio: null, target: '< 250 ms', met: (lat.p99 ?? Infinity) < 250 },
      { figure: `drop ${label}: fairness Kendall tau`, ours: fair.tau ?? NaN, baseline: null, ratio: null, target: '>= 0.99', met: (fair.tau ?? 0) >= 0.99 },
      { figure: `drop ${label}: overtakes (pairs)`, ours: fair.overtakes, baseline: null, ratio: null, target: 'info', met: null },
      { figure: `drop ${label}: units sold`, ours: Number(a.sold), baseline: null, ratio: null, target: `= ${stock}, audit ok`, met: a.sold === stock && a.ok === true && errors === 0 },
    ];
  } finally {
    await product.close();
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { formatTable } = await import('./lib/table.js');
  const { values } = (await import('node:util')).parseArgs({ options: { quick: { type: 'boolean' }, visitors: { type: 'string' }, stock: { type: 'string' }, 'max-active': { type: 'string' } } });
  run({ quick: values.quick, maxActive: values['max-active'] ? Number(values['max-active']) : undefined, visitors: values.visitors ? Number(values.visitors) : undefined, stock: values.stock ? Number(values.stock) : undefined }).then(
    (rows) => {
      process.stdout.write(`\n${formatTable(rows)}\n`);
      process.exit(rows.some((r) => r.met === false) ? 1 : 0);
    },
    (e: Error) => {
      process.stderr.write(`bench/drop failed: ${e.stack ?? e.message}\n`);
      process.exit(1);
    },
  );
}
