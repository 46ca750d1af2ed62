/**
 * A Redis master SIGKILLed takes down only the rooms whose slots it holds (docs/api.md section 6;
 * the cluster runs with `cluster-require-full-coverage no`): two `npm run gateway` processes on
 * one port, a Redis Cluster of three masters with a replica each, room `near` on the master that
 * is killed and room `far` on another. Meanwhile `far` answers every join and every state read
 * 200, as before the kill; `near` answers 503 `unavailable` with Retry-After (never a 500, never
 * a hang past 2 s: each answer is timed, bounded at 2.5 s for this test's own overhead) until its
 * replica is promoted, then 200 again by itself. The gateways' logs stay readable: the warnings
 * the Redis clients raise while the master is away (one per reconnect attempt per connection
 * before shared/redis.ts rateLimitErrors) are counted and bounded, and so are the routes' own
 * "redis unavailable" warnings (one per failed request before shared/log.ts throttledWarn).
 */
import t from 'tap';
import { roomKeys } from '../../shared/keys.js';
import { redisCluster } from './harness.js';
import { putRoom, serviceEnv, sleep, startGateways, timedCall, type Answer } from './faults.js';

const HANG_BOUND_MS = 2500;
const WORKERS = 4;
/** Redis client warnings per gateway process a failover may cost (unlimited, it was 150-220 in 4 s). */
const MAX_WARNINGS_PER_GATEWAY = 20;
/** Lines of any one warning per gateway over the whole test (one per 5 s window while the master is away). */
const MAX_LINES_PER_WARNING = 4;

interface Seen extends Answer { room: string; route: string; at: number }

t.test('one master killed: rooms on the other masters keep answering 200; the killed master\'s room 503s with Retry-After, then recovers', async (t) => {
  const cluster = await redisCluster(t, { replicas: 1 });
  const env = serviceEnv(cluster.seeds);
  const prefix = env.REDIS_PREFIX!;
  // Two room names whose slots sit on two different masters.
  const masterOf = (room: string) => cluster.masterOf(roomKeys(prefix, room).q);
  const near = 'near-0';
  const nearMaster = await masterOf(near);
  let far = '';
  for (let i = 0; !far; i++) if ((await masterOf(`far-${i}`)) !== nearMaster) far = `far-${i}`;
  t.comment(`room ${near} on master ${nearMaster}, room ${far} on master ${await masterOf(far)}`);

  const gws = await startGateways(t, 2, env);
  const url = gws.url;
  for (const room of [near, far]) {
    await putRoom(url, room, { opensAt: new Date(Date.now() - 60_000).toISOString(), prequeueSeconds: 0, admitRatePerMin: 600, maxActive: 100_000 });
  }
  const join = (room: string) => timedCall(`${url}/api/rooms/${room}/join`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const state = (room: string) => timedCall(`${url}/api/rooms/${room}`);
  for (const room of [near, far]) {
    const first = await Promise.all(Array.from({ length: 10 }, () => join(room)));
    t.same(first.map((a) => a.status), Array(10).fill(200), `${room}: 10 joins answered 200 before the fault`);
  }

  const seen: Seen[] = [];
  let stopping = false;
  const routes: [string, (room: string) => Promise<Answer>][] = [['join', join], ['state', state]];
  const traffic = Array.from({ length: WORKERS }, async (_, w) => {
    for (let i = w; !stopping; i++) {
      const room = i % 2 ? near : far;
      const [route, fn] = routes[(i >> 1) % routes.length]!;
      const a = await fn(room);
      seen.push({ ...a, room, route, at: Date.now() });
    }
  });
  await sleep(1000);
  // The Redis clients' own warnings ('redis error', 'redis (subscriber) error'): one per reconnect
  // attempt per connection unless rate-limited. Per-request warnings (a failed join) are counted
  // and printed, not bounded here: they scale with the traffic.
  const clientWarning = (l: string) => /"level":40/.test(l) && /"msg":"redis (\(subscriber\) )?error"/.test(l);
  const warningsBefore = gws.list.map((g) => g.output().split('\n').filter(clientWarning).length);

  const killedAt = Date.now();
  cluster.kill(nearMaster);
  t.comment(`SIGKILL master ${nearMaster} (room ${near})`);
  await cluster.waitOk(30_000);
  const promotedAt = Date.now();
  t.comment(`replica promoted: every slot served again ${promotedAt - killedAt} ms after the kill`);
  let backAt = 0;
  for (const deadline = Date.now() + 20_000; !backAt && Date.now() < deadline; await sleep(100)) {
    const a = await join(near);
    seen.push({ ...a, room: near, route: 'join', at: Date.now() });
    if (a.status === 200) backAt = Date.now();
  }
  t.ok(backAt > 0, `${near} answers joins 200 again by itself, ${backAt - promotedAt} ms after the promotion`);
  await sleep(1500);
  stopping = true;
  await Promise.all(traffic);

  const during = (room: string) => seen.filter((a) => a.room === room && a.at > killedAt && a.at < promotedAt);
  const farDuring = during(far);
  t.ok(farDuring.filter((a) => a.route === 'join').length >= 10, `${far} was asked ${farDuring.length} times while ${nearMaster} was down`);
  const farNot200 = farDuring.filter((a) => a.status !== 200);
  t.same(farNot200.map(({ route, status, error, ms }) => ({ route, status, error, ms })), [],
    `${far} (another master): all ${farDuring.length} joins and state reads during the fault answered 200`);
  const farJoins = farDuring.filter((a) => a.route === 'join' && a.status === 200);
  t.equal(new Set(farJoins.map((a) => a.body.ticket)).size, farJoins.length, `${far}: each of its ${farJoins.length} joins during the fault got a ticket of its own`);

  const nearDuring = during(near);
  const near503 = nearDuring.filter((a) => a.status === 503);
  t.ok(near503.length > 0, `${near} (killed master): ${near503.length} of ${nearDuring.length} answers during the fault were 503`);
  const wrong = seen.filter((a) => !(a.status === 200 || (a.status === 503 && a.error === 'unavailable' && /^\d+$/.test(a.retryAfter ?? ''))));
  t.same(wrong.map(({ room, route, status, error, retryAfter }) => ({ room, route, status, error, retryAfter })), [],
    `every one of ${seen.length} answers is 200, or 503 unavailable with Retry-After (no 500, no dropped connection)`);
  const slowest = seen.reduce((m, a) => (a.ms > m.ms ? a : m), seen[0]!);
  t.comment(`slowest answer: ${slowest.ms} ms (${slowest.room} ${slowest.route}, ${slowest.status})`);
  t.same(seen.filter((a) => a.ms >= HANG_BOUND_MS).map(({ room, route, status, ms }) => ({ room, route, status, ms })), [], `no answer took ${HANG_BOUND_MS} ms or more`);

  for (const [i, g] of gws.list.entries()) {
    t.notOk(g.exited(), `${g.name} is still running`);
    const lines = g.output().split('\n');
    const warnings = lines.filter(clientWarning).length - warningsBefore[i]!;
    const kinds = new Map<string, number>();
    for (const l of lines.filter((x) => /"level":40/.test(x))) {
      const msg = /"msg":"([^"]*)"/.exec(l)?.[1] ?? '?';
      kinds.set(msg, (kinds.get(msg) ?? 0) + 1);
    }
    t.comment(`${g.name}: warning lines in all: ${[...kinds].map(([k, n]) => `${n}x ${k}`).join('; ')}`);
    const floods = [...kinds].filter(([, n]) => n > MAX_LINES_PER_WARNING);
    t.same(floods, [], `${g.name}: no warning repeated more than ${MAX_LINES_PER_WARNING} times (one per request or per tick was 30-140 in 4 s: shared/log.ts throttledWarn)`);
    t.ok(warnings <= MAX_WARNINGS_PER_GATEWAY, `${g.name}: at most ${MAX_WARNINGS_PER_GATEWAY} Redis client warnings during the failover (${warnings})`);
    const errors = lines.filter((l) => /"level":(50|60)|uncaught|unhandled/i.test(l));
    t.same(errors.slice(0, 5), [], `${g.name}: no error or unhandled exception logged (${errors.length})`);
  }
});
