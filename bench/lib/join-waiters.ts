/**
 * bench/join, figures 3 and 4: the gateway holding many idle waiting WebSockets.
 * - RSS per socket: the gateway child's RSS after a GC, before and after opening the sockets
 *   (the visitors joined before the "before" figure, so only the sockets are counted).
 * - Fan-out: T is stamped in the gateway just before one admission step; then one position round
 *   runs; each client notes when its first message showing the new admittedThrough (or its
 *   `admitted` message) arrived. The same clients first time one bare uWS `app.publish` to all of
 *   them from a trivial server: that floor is what these clients on this machine can observe.
 */
import type { BenchRow } from '../types.js';
import { BROWSER, DEFENCES_OFF, putRoom } from './join-setup.js';
import { cpuMeter, type ServerProcess } from './server.js';
import { fmt, median, percentileOf, row } from './table.js';
import { WsFleet, type MessageMatch } from './ws-fleet.js';

interface Arrival { p50: number; p99: number; max: number; missing: number; open: number; serverCpuMs: number }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Watch for `match`, trigger, wait (at most 3 s) for every waiting socket; arrivals counted from the trigger's `t`. */
async function fanoutOnce<T extends { t: number }>(fleet: WsFleet, server: ServerProcess, match: MessageMatch[], trigger: () => Promise<T>): Promise<Arrival & { step: T }> {
  await fleet.watch(match);
  const meter = cpuMeter({ server: [server.pid] });
  const step = await trigger();
  let c = await fleet.collect();
  for (let w = 0; w < 30 && c.arrivals.some((a) => a === 0); w++) {
    await sleep(100);
    c = await fleet.collect();
  }
  const serverCpuMs = 1000 * meter().seconds.server!;
  const lags = c.arrivals.filter((a) => a > 0).map((a) => a - step.t);
  return {
    step, serverCpuMs, p50: percentileOf(lags, 50), p99: percentileOf(lags, 99), max: Math.max(...lags),
    missing: c.arrivals.filter((a) => a === 0).length, open: c.open,
  };
}

const arrivalText = (s: Arrival) =>
  `arrival p50 ${fmt(s.p50)} ms, p99 ${fmt(s.p99)} ms, last ${fmt(s.max)} ms${s.missing ? `; ${s.missing} never got it` : ''}; ` +
  `${s.open} sockets open; server CPU meanwhile ${fmt(s.serverCpuMs, 0)} ms`;

/** RSS per waiting socket and update fan-out, with the fan-out floor of the same clients first. */
export async function waitersPhase(
  log: (l: string) => void, gw: ServerProcess, trivial: ServerProcess, env: Record<string, string>, wanted: number,
  rounds: number, profDir?: string,
): Promise<BenchRow[]> {
  await gw.start({ env, admitter: false });
  await putRoom(gw.port, 'ws', { ...DEFENCES_OFF, admitRatePerMin: 600, maxActive: 1_000_000 });
  // One process may hold at most 20,000 open files: the gateway's own (listen socket, Redis, epoll...) count too.
  const limit = 20_000;
  const count = Math.min(wanted, limit - gw.fds() - 16);
  const fleet = new WsFleet(count, 5000);
  const rows: BenchRow[] = [];
  try {
    log(`[join] 4a. floor: one bare uWS publish (trivial server) to ${count} sockets of the same client fleet`);
    await trivial.start();
    await fleet.join({ host: '127.0.0.1', port: trivial.port, room: 'floor', headers: BROWSER });
    const fo = await fleet.open();
    await sleep(1000);
    const floor: Arrival[] = [];
    for (let i = 1; i <= rounds; i++) {
      const s = await fanoutOnce(fleet, trivial, [{ type: 'position', atLeast: { admittedThrough: i } }],
        () => trivial.command<{ t: number; publishMs: number }>('publish'));
      floor.push(s);
      log(`  publish ${i} (${fmt(s.step.publishMs)} ms in uWS) to ${fo.opened}: ${arrivalText(s)}`);
      await sleep(500);
    }
    await fleet.disconnect();
    await trivial.stop();

    log(`[join] 3. memory per idle waiting WebSocket: ${count} sockets (gateway holds ${gw.fds()} fds before; its limit is ${limit})`);
    const j = await fleet.join({ host: '127.0.0.1', port: gw.port, room: 'ws', headers: BROWSER });
    const before = await gw.gc();
    log(`  ${j.joined} visitors joined in ${fmt(j.ms / 1000)} s; gateway after GC: RSS ${fmt(before.rss / 2 ** 20, 1)} MiB, heap ${fmt(before.heapUsed / 2 ** 20, 1)} MiB`);
    const o = await fleet.open();
    if (o.failed) log(`  ${o.failed} sockets failed to open, first: ${o.firstError}`);
    await sleep(1500);
    // RSS moves with what uWS holds for clients slow to read their position messages: take the
    // lowest of a few GC'd samples, 300 ms apart, as the idle figure.
    let after = await gw.gc();
    for (let k = 0; k < 4; k++) {
      await sleep(300);
      const m = await gw.gc();
      if (m.rss < after.rss) after = m;
    }
    const perSocket = (after.rss - before.rss) / o.opened;
    log(`  ${o.opened} sockets open in ${fmt(o.ms / 1000)} s; after GC: RSS ${fmt(after.rss / 2 ** 20, 1)} MiB (+${fmt(perSocket, 0)} B/socket), heap +${fmt((after.heapUsed - before.heapUsed) / o.opened, 0)} B/socket`);
    // Below ~10,000 sockets the fixed part of RSS growth (malloc arenas, pages) dominates the figure.
    const few = o.opened < 10_000 ? '; too few sockets to trust, see the full run' : '';
    rows.push(row(`gateway RSS per idle waiting WebSocket at ${o.opened} (B${few})`, perSocket, null, null, '< 2048 B', few ? null : perSocket < 2048));
    rows.push(row(`gateway JS heap per idle waiting WebSocket at ${o.opened} (B)`, (after.heapUsed - before.heapUsed) / o.opened, null, null, 'info (part of RSS)', null));

    log(`[join] 4. one admission step → position update at all ${o.opened} waiters`);
    // The first step only starts the admission clock (it admits no one); then 600/min admits a few per step.
    let admittedThrough = (await gw.command<{ admitted: number }>('admitAndPublish')).admitted;
    await sleep(1000);
    const stats: Arrival[] = [];
    const steps = async () => {
      for (let i = 1; i <= rounds; i++) {
        const s = await fanoutOnce(fleet, gw, [{ type: 'position', atLeast: { admittedThrough: admittedThrough + 1 } }, { type: 'admitted' }],
          () => gw.command<{ t: number; admitted: number; tRound: number; tSent: number }>('admitAndPublish'));
        admittedThrough += s.step.admitted;
        stats.push(s);
        const round = s.step.tSent - s.step.tRound < 1 ? 'a periodic position round was already running' : `position round sent in ${fmt(s.step.tSent - s.step.tRound)} ms`;
        log(`  step ${i}: admitted ${s.step.admitted} (admission ${fmt(s.step.tRound - s.step.t)} ms, ${round}); ${arrivalText(s)}`);
        await sleep(1000);
      }
    };
    await (profDir ? gw.profiled(profDir, 'waiters', steps) : steps());
    const med = (xs: Arrival[], k: 'p50' | 'p99' | 'max' | 'serverCpuMs') => median(xs.map((x) => x[k]));
    const missing = Math.max(...stats.map((s) => s.missing));
    const figure = (what: string) => `update → all ${o.opened} waiters, ${what} (ms; baseline: bare uWS publish)`;
    for (const k of ['p50', 'p99'] as const) rows.push(row(figure(`${k} arrival`), med(stats, k), med(floor, k), med(floor, k) / med(stats, k), 'info', null));
    rows.push(row(`server CPU from the update until all ${o.opened} had it (ms; baseline: bare uWS publish)`,
      med(stats, 'serverCpuMs'), med(floor, 'serverCpuMs'), med(floor, 'serverCpuMs') / med(stats, 'serverCpuMs'), 'info', null));
    const last = med(stats, 'max');
    rows.push(row(figure(`last arrival${missing ? `, ${missing} missed` : ''}`), last, med(floor, 'max'), med(floor, 'max') / last, '< 250 ms', last < 250 && missing === 0));
  } finally {
    await fleet.close();
    await gw.stop();
  }
  return rows;
}
