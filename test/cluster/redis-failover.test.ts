/**
 * The Redis master that holds a room SIGKILLed under traffic (docs/api.md section 6): two
 * `npm run gateway` processes on one port, a Redis Cluster of three masters with a replica each.
 * Until the replica is promoted every route that needs the room answers 503 `unavailable` with
 * Retry-After (never a 500, never a hang past 2 s: each answer is timed, and bounded at 2.5 s to
 * allow for the test's own overhead), then the service is back by itself; every visitor who joined
 * more than a second before the kill keeps its ticket (AOF everysec / asynchronous replication may
 * lose the last second, the documented promise), no ticket is issued twice, the admitter admits
 * again and the WebSockets hear their positions again.
 */
import t from 'tap';
import WebSocket from 'ws';
import { roomKeys } from '../../shared/keys.js';
import { ADMIN } from '../gateway/helpers.js';
import { redisCluster } from './harness.js';
import { CLIENT_GIVES_UP_MS, putRoom, serviceEnv, sleep, startGateways, timedCall, type Answer } from './faults.js';

/** The contract's 2 s, plus room for this test's own overhead on a loaded 2-core box. */
const HANG_BOUND_MS = 2500;
const EARLY = 60;
const WORKERS = 6;

interface Seen extends Answer { route: string; at: number }

/** A waiting visitor's WebSocket: when it heard each message (a position or its token). */
function socket(url: string, vid: string): { heard: number[]; open: Promise<void>; closed: () => boolean; close(): void } {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/api/rooms/r/ws`, { headers: { 'x-visitor-id': vid } });
  const heard: number[] = [];
  ws.on('message', () => heard.push(Date.now()));
  ws.on('error', () => {});
  return { heard, open: new Promise((r) => ws.once('open', () => r())), closed: () => ws.readyState !== WebSocket.OPEN, close: () => ws.terminate() };
}

function upgrade(url: string, vid: string): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/api/rooms/r/ws`, { headers: { 'x-visitor-id': vid } });
    const done = (status: number, retryAfter: string | null, error?: string) => {
      clearTimeout(timer); ws.terminate();
      resolve({ status, error, body: {}, retryAfter, ms: Math.round(performance.now() - started) });
    };
    const timer = setTimeout(() => done(0, null, 'no answer'), CLIENT_GIVES_UP_MS);
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d; });
      res.on('end', () => { let e: string | undefined; try { e = (JSON.parse(text) as { error?: string }).error; } catch { e = text; } done(res.statusCode ?? 0, (res.headers['retry-after'] as string | undefined) ?? null, e); });
    });
    ws.on('open', () => done(101, null));
    ws.on('error', () => {});
  });
}

t.test('the Redis master of a room SIGKILLed: 503 unavailable meanwhile, back by itself on the promoted replica, every ticket kept and unique', async (t) => {
  const cluster = await redisCluster(t, { replicas: 1 });
  const env = serviceEnv(cluster.seeds);
  const gws = await startGateways(t, 2, env);
  const url = gws.url;
  await putRoom(url, 'r', { opensAt: new Date(Date.now() - 60_000).toISOString(), prequeueSeconds: 0, admitRatePerMin: 300, maxActive: 100_000 });
  const json = { 'content-type': 'application/json' };
  const join = (vid?: string) => timedCall(`${url}/api/rooms/r/join`, { method: 'POST', headers: { ...json, ...(vid ? { 'x-visitor-id': vid } : {}) }, body: '{}' });

  // Who got which ticket, from every join answered 200 (before, during and after the fault).
  const ticketOf = new Map<string, number>();
  const answeredAt = new Map<string, number>();
  const holders = new Map<number, Set<string>>();
  const note = (a: Answer) => {
    if (a.status !== 200 || typeof a.body.ticket !== 'number') return;
    const vid = String(a.body.visitorId);
    ticketOf.set(vid, a.body.ticket);
    if (!answeredAt.has(vid)) answeredAt.set(vid, Date.now());
    const h = holders.get(a.body.ticket) ?? new Set();
    h.add(vid);
    holders.set(a.body.ticket, h);
  };

  const early = [];
  for (let i = 0; i < EARLY; i += 10) early.push(...(await Promise.all(Array.from({ length: 10 }, () => join()))));
  t.same(early.map((e) => e.status), Array(EARLY).fill(200), `${EARLY} early joins answered 200`);
  early.forEach(note);
  const earlyVids = early.map((e) => String(e.body.visitorId));
  const sockets = earlyVids.slice(-5).map((vid) => socket(url, vid));
  t.teardown(() => sockets.forEach((s) => s.close()));
  await Promise.all(sockets.map((s) => s.open));
  await sleep(1500); // "more than a second before the kill"

  // Traffic on every route that needs the room, from WORKERS clients, until told to stop.
  const seen: Seen[] = [];
  let stopping = false;
  const routes: [string, (vid: string) => Promise<Answer>][] = [
    ['join (new)', () => join()],
    ['join (again)', (vid) => join(vid)],
    ['state', () => timedCall(`${url}/api/rooms/r`)],
    ['me', (vid) => timedCall(`${url}/api/rooms/r/me`, { headers: { 'x-visitor-id': vid } })],
    ['claim', (vid) => timedCall(`${url}/api/rooms/r/claim`, { method: 'POST', headers: { ...json, 'x-visitor-id': vid }, body: '{}' })],
    ['admin stats', () => timedCall(`${url}/admin/rooms/r/stats`, { headers: { authorization: `Bearer ${ADMIN}` } })],
    ['ws upgrade', (vid) => upgrade(url, vid)],
  ];
  const traffic = Array.from({ length: WORKERS }, async (_, w) => {
    for (let i = w; !stopping; i++) {
      const [route, fn] = routes[i % routes.length]!;
      const vid = earlyVids[i % EARLY]!;
      const a = await fn(vid);
      seen.push({ ...a, route, at: Date.now() });
      if (route.startsWith('join')) note(a);
    }
  });

  await sleep(1000);
  const master = await cluster.masterOf(roomKeys(env.REDIS_PREFIX!, 'r').q);
  const killedAt = Date.now();
  cluster.kill(master);
  t.comment(`SIGKILL the room's master on port ${master}`);
  await cluster.waitOk(30_000);
  const okAt = Date.now();
  t.comment(`cluster ok again ${okAt - killedAt} ms after the kill (replica promoted)`);
  // Back by itself: a join answered 200 (the contract: within 5 s of the store answering; timings
  // here vary, so the test waits longer and reports the figure).
  let backAt = 0;
  for (const deadline = Date.now() + 20_000; !backAt && Date.now() < deadline; await sleep(100)) {
    const a = await join();
    seen.push({ ...a, route: 'join (new)', at: Date.now() });
    note(a);
    if (a.status === 200) backAt = Date.now();
  }
  t.ok(backAt > 0, `service back by itself ${backAt - okAt} ms after the promoted replica took the slots`);
  await sleep(2000); // traffic after the recovery too
  stopping = true;
  await Promise.all(traffic);

  const during = seen.filter((a) => a.at >= killedAt && a.at <= backAt);
  const unavailable = during.filter((a) => a.status === 503);
  t.ok(unavailable.length > 0, `${unavailable.length} of the ${during.length} answers between the kill and the recovery were 503`);
  const wrong = seen.filter((a) => !(a.status === 503 ? a.error === 'unavailable' && /^\d+$/.test(a.retryAfter ?? '') : a.status > 0 && a.status < 500));
  t.same(wrong.map(({ route, status, error, retryAfter }) => ({ route, status, error, retryAfter })), [], `every one of ${seen.length} answers is below 500, or 503 unavailable with Retry-After`);
  const slow = seen.filter((a) => a.ms >= HANG_BOUND_MS);
  const slowest = seen.reduce((m, a) => (a.ms > m.ms ? a : m), seen[0]!);
  t.comment(`slowest answer: ${slowest.ms} ms (${slowest.route}, ${slowest.status})`);
  t.same(slow.map(({ route, status, ms }) => ({ route, status, ms })), [], `no answer took ${HANG_BOUND_MS} ms or more`);
  const byRoute = new Map<string, Set<number>>();
  for (const a of during) byRoute.set(a.route, (byRoute.get(a.route) ?? new Set()).add(a.status));
  t.comment(`statuses during the fault: ${[...byRoute].map(([r, s]) => `${r} ${[...s].join('/')}`).join(', ')}`);

  // Every early visitor keeps its ticket; no ticket went to two visitors.
  const kept = await Promise.all(early.map(async (e) => {
    const me = await timedCall(`${url}/api/rooms/r/me`, { headers: { 'x-visitor-id': String(e.body.visitorId) } });
    return me.body.ticket === e.body.ticket;
  }));
  t.equal(kept.filter(Boolean).length, EARLY, `all ${EARLY} visitors who joined before the kill keep their ticket`);
  // A join acknowledged in the last moments before the kill may not have reached the replica
  // (asynchronous replication: the documented loss window, README "What a store may lose"); the
  // promoted replica then issues that ticket number again. Such a visitor is lost, not doubled:
  // the room no longer knows its ticket. So: every ticket the room still knows has one holder,
  // and every visitor the room lost had its join answered within the window before the kill.
  const LOSS_WINDOW_MS = 2000;
  const twice = [...holders].filter(([, vids]) => vids.size > 1);
  const lost: { vid: string; msBeforeKill: number }[] = [];
  const doubled: { ticket: number; holders: number }[] = [];
  for (const [ticket, vids] of twice) {
    const still: string[] = [];
    for (const vid of vids) {
      const me = await timedCall(`${url}/api/rooms/r/me`, { headers: { 'x-visitor-id': vid } });
      if (me.status === 200 && me.body.ticket === ticket) still.push(vid);
      else lost.push({ vid, msBeforeKill: killedAt - (answeredAt.get(vid) ?? 0) });
    }
    if (still.length > 1) doubled.push({ ticket, holders: still.length });
  }
  t.comment(`${holders.size} tickets issued to ${ticketOf.size} visitors; ${lost.length} visitors lost with the writes the replica had not received`);
  t.same(doubled, [], 'no ticket the room knows is held by two visitors');
  t.same(lost.filter((l) => l.msBeforeKill > LOSS_WINDOW_MS), [], `every lost visitor joined within ${LOSS_WINDOW_MS} ms before the kill (the store's loss window)`);

  // The admitter admits again on the promoted replica; the WebSockets hear positions again.
  const state = async () => Number((await timedCall(`${url}/api/rooms/r`)).body.admittedThrough);
  const through = await state();
  await sleep(3000);
  t.ok((await state()) > through, `the admitter goes on after the failover (admittedThrough ${through} -> ${await state()})`);
  t.same(sockets.map((s) => s.closed()), sockets.map(() => false), 'the WebSockets opened before the kill are still open');
  t.same(sockets.map((s) => s.heard.some((at) => at > backAt)), sockets.map(() => true), 'and each heard its position (or its token) after the recovery');
  for (const g of gws.list) t.notOk(g.exited(), `${g.name} is still running`);
  const errors = gws.list.flatMap((g) => g.output().split('\n').filter((l) => /"level":(50|60)|uncaught|unhandled/i.test(l)));
  t.same(errors.slice(0, 5), [], `no process logged an error or an unhandled exception (${errors.length})`);
});
