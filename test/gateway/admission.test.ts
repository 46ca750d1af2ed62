/**
 * Admission with an injected clock and THREE gateway processes admitting at once (child
 * processes sharing one Redis and prefix): admitRatePerMin 600 admits 10 per simulated second,
 * never more in any one-second window, each ticket once; maxActive holds.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { roomKeys } from '../../shared/keys.js';
import { ADMIN, gateway, join, manualClock, OPEN_LIMITS, putRoom, testConfig, type Teardown } from './helpers.js';
import type { Config } from '../../shared/config.js';

const CHILD = fileURLToPath(new URL('./child-gateway.ts', import.meta.url));

interface Child { proc: ChildProcess; call(cmd: string, now?: number): Promise<Record<string, unknown>> }

async function spawnChildren(t: Teardown, config: Config, start: number, n: number): Promise<Child[]> {
  const children = await Promise.all(Array.from({ length: n }, () => new Promise<Child>((resolve, reject) => {
    const proc = fork(CHILD, [], {
      execArgv: ['--import=tsx'],
      env: { ...process.env, REDIS_PREFIX: config.redisPrefix, ADMIN_TOKEN: ADMIN, TEST_CLOCK_START: String(start) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let id = 0;
    const waiting = new Map<number, (m: Record<string, unknown>) => void>();
    const timer = setTimeout(() => reject(new Error('child gateway did not start in 30 s')), 30_000);
    proc.on('message', (m: Record<string, unknown>) => {
      if (m.ready) { clearTimeout(timer); resolve(child); return; }
      waiting.get(m.id as number)?.(m);
      waiting.delete(m.id as number);
    });
    proc.on('error', reject);
    const child: Child = {
      proc,
      call: (cmd, now) => new Promise((res) => { const i = ++id; waiting.set(i, res); proc.send({ id: i, cmd, now }); }),
    };
  })));
  t.teardown(() => { for (const c of children) if (c.proc.connected) c.proc.disconnect(); });
  return children;
}

t.test('600/min with three processes admitting at once: 10 per second, never more, each ticket once', async (t) => {
  const opensAt = Date.parse('2030-01-01T12:00:00.000Z');
  const clock = manualClock(opensAt + 1000);
  const config = testConfig();
  const gw = await gateway(t, config, { clock: clock.now });
  await putRoom(gw, 'r', { opensAt: new Date(opensAt).toISOString(), admitRatePerMin: 600, maxActive: 100_000, ...OPEN_LIMITS });
  const visitors = await Promise.all(Array.from({ length: 120 }, () => join(gw, 'r')));
  t.equal(visitors.filter((v) => v.status === 200).length, 120);

  const children = await spawnChildren(t, config, clock.now(), 3);
  const perStep: number[] = [];
  const perChild = [0, 0, 0];
  // The first admission call starts the room's credit clock (nothing is owed for the time before).
  t.same((await Promise.all(children.map((c) => c.call('admit', clock.now())))).map((r) => r.admitted), [0, 0, 0]);
  // 8 simulated seconds in 100 ms steps; at every step all three admit concurrently.
  for (let step = 0; step < 80; step++) {
    clock.advance(100);
    const replies = await Promise.all(children.map((c) => c.call('admit', clock.now())));
    const counts = replies.map((r) => Number(r.admitted));
    counts.forEach((c, i) => { perChild[i]! += c; });
    perStep.push(counts.reduce((a, b) => a + b, 0));
  }
  const total = perStep.reduce((a, b) => a + b, 0);
  t.equal(total, 80, '8 simulated seconds at 600/min admit exactly 80');
  let worstWindow = 0;
  for (let i = 0; i + 10 <= perStep.length; i++) worstWindow = Math.max(worstWindow, perStep.slice(i, i + 10).reduce((a, b) => a + b, 0));
  t.ok(worstWindow <= 10, `no one-second window admits more than 10 (worst ${worstWindow})`);
  t.ok(perChild.filter((c) => c > 0).length >= 2, `more than one process admitted (${perChild.join(', ')})`);

  const k = roomKeys(config.redisPrefix, 'r');
  const [at, tokens, active] = await Promise.all([gw.redis.hget(k.q, 'at'), gw.redis.hlen(k.tok), gw.redis.zcard(k.active)]);
  t.equal(Number(at), 80, 'admittedThrough = 80');
  t.equal(tokens, 80, 'one token per admitted visitor: no ticket admitted twice');
  t.equal(active, 80);
  const me = await Promise.all(visitors.map((v) => fetch(`${gw.url}/api/rooms/r/me`, { headers: { 'x-visitor-id': v.visitorId } }).then((r) => r.json() as Promise<{ ticket: number; admitted: boolean }>)));
  t.same(me.filter((m) => m.admitted).map((m) => m.ticket).sort((a, b) => a - b), Array.from({ length: 80 }, (_, i) => i + 1), 'tickets 1..80 admitted, in order');
});

t.test('maxActive holds across processes; a finished order or an expired token frees a place', async (t) => {
  const opensAt = Date.parse('2030-01-01T12:00:00.000Z');
  const clock = manualClock(opensAt + 1000);
  const config = testConfig();
  const gw = await gateway(t, config, { clock: clock.now });
  await putRoom(gw, 'r', { opensAt: new Date(opensAt).toISOString(), admitRatePerMin: 600, maxActive: 25, tokenTtlSeconds: 30, ...OPEN_LIMITS });
  await Promise.all(Array.from({ length: 60 }, () => join(gw, 'r')));
  const children = await spawnChildren(t, config, clock.now(), 3);
  const k = roomKeys(config.redisPrefix, 'r');
  await Promise.all(children.map((c) => c.call('admit', clock.now())));
  const tick = async () => {
    clock.advance(100);
    const r = await Promise.all(children.map((c) => c.call('admit', clock.now())));
    return r.reduce((s, x) => s + Number(x.admitted), 0);
  };
  let admitted = 0;
  let maxSeen = 0;
  for (let i = 0; i < 50; i++) {
    admitted += await tick();
    maxSeen = Math.max(maxSeen, await gw.redis.zcount(k.active, clock.now(), '+inf'));
  }
  t.equal(admitted, 25, '5 s at 600/min would admit 50, but maxActive is 25');
  t.equal(maxSeen, 25, 'never more than 25 active');

  // Checkout ends one order (ZREM): exactly one more is admitted.
  const first = String((await gw.redis.zrange(k.active, '0', '0'))[0]);
  await gw.redis.zrem(k.active, first);
  let more = 0;
  for (let i = 0; i < 10; i++) more += await tick();
  t.equal(more, 1, 'one place freed, one admitted');

  // All tokens expire (30 s TTL): at most one second's worth is admitted at once.
  clock.advance(31_000);
  const burst = await tick();
  t.equal(burst, 10, 'after a long pause the credit is capped at one second (10)');
  for (let i = 0; i < 20; i++) more += await tick();
  t.equal(Number(await gw.redis.hget(k.q, 'at')), 26 + 10 + 15, 'refilled up to maxActive again');
  t.equal(await gw.redis.zcount(k.active, clock.now(), '+inf'), 25);
});
