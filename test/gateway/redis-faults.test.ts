/**
 * Redis faults, on a redis-server of the test's own (docs/api.md section 6): while Redis is away,
 * killed (connections refused) or hung (SIGSTOP: connections open, no answer), every route that
 * needs it answers 503 `unavailable` with Retry-After (the old client queued commands through its
 * reconnects and hung 10-15 s), /healthz says 503, and the gateway serves again by itself once
 * Redis answers. And a Redis that comes back empty does not leave the JWKS empty while the gateway
 * signs with the key it holds in memory.
 */
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { gateway, join, manualClock, OPEN_LIMITS, putRoom, testConfig, until } from './helpers.js';
import { ownRedis } from './redis-server.js';

/** A client that gives up long after the contract's 2 s (timings here vary 2-5x): a hang fails the test. */
const CLIENT_GIVES_UP_MS = 6000;

interface Answer { status: number; error?: unknown; retryAfter: string | null; ms: number }

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const started = Date.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(CLIENT_GIVES_UP_MS) });
    const text = await res.text();
    let error: unknown;
    try { error = (JSON.parse(text) as { error?: unknown }).error; } catch { error = text; }
    return { status: res.status, error, retryAfter: res.headers.get('retry-after'), ms: Date.now() - started };
  } catch (err) {
    return { status: 0, error: `no answer: ${(err as Error).name}`, retryAfter: null, ms: Date.now() - started };
  }
}

function upgrade(url: string, vid: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/api/rooms/r/ws`, { headers: { 'x-visitor-id': vid } });
    const timer = setTimeout(() => { resolve(0); ws.terminate(); }, CLIENT_GIVES_UP_MS);
    ws.on('unexpected-response', (_req, res) => { clearTimeout(timer); resolve(res.statusCode ?? 0); ws.terminate(); });
    ws.on('open', () => { clearTimeout(timer); resolve(101); ws.close(); });
    ws.on('error', () => {});
  });
}

/** Every route that needs Redis, two rounds (the client must keep failing fast, not only at first). */
async function whileAway(t: Test, base: string, vid: string, what: string): Promise<string> {
  let slowest = 0;
  let slowestWhat = '';
  const auth = { authorization: 'Bearer test-admin-token' };
  for (let round = 0; round < 2; round++) {
    const answers: [string, Answer][] = [
      ['state', await call(`${base}/api/rooms/r`)],
      ['join', await call(`${base}/api/rooms/r/join`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', 'x-visitor-id': vid } })],
      ['me', await call(`${base}/api/rooms/r/me`, { headers: { 'x-visitor-id': vid } })],
      ['claim', await call(`${base}/api/rooms/r/claim`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', 'x-visitor-id': vid } })],
      ['admin stats', await call(`${base}/admin/rooms/r/stats`, { headers: auth })],
    ];
    for (const [name, a] of answers) {
      t.match(a, { status: 503, error: 'unavailable', retryAfter: /^\d+$/ }, `${what}, round ${round + 1}: ${name} 503 unavailable with Retry-After`);
      if (a.ms > slowest) { slowest = a.ms; slowestWhat = name; }
    }
    t.equal(await upgrade(base, vid), 503, `${what}, round ${round + 1}: the WebSocket upgrade is refused with 503`);
    const health = await call(`${base}/healthz`);
    t.equal(health.status, 503, `${what}, round ${round + 1}: /healthz 503`);
    if (health.ms > slowest) { slowest = health.ms; slowestWhat = 'healthz'; }
  }
  return `${slowest} ms (${slowestWhat})`;
}

t.test('Redis killed: 503 unavailable on every route while it is away; back by itself when it returns', async (t) => {
  const redis = await ownRedis(t);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'redis-faults-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const gw = await gateway(t, testConfig({ REDIS_URL: redis.url, DATA_DIR: dataDir }));
  await putRoom(gw, 'r', { opensAt: new Date(Date.now() - 1000).toISOString(), ...OPEN_LIMITS, record: true });
  const v = await join(gw, 'r');
  t.equal(v.status, 200);

  await redis.kill();
  const slowest = await whileAway(t, gw.url, v.visitorId, 'killed');
  t.comment(`slowest answer while Redis was killed: ${slowest}`);

  await redis.start();
  const back = Date.now();
  await until(async () => (await call(`${gw.url}/healthz`)).status === 200, 10_000, '/healthz 200 after Redis returned');
  t.comment(`healthy again ${Date.now() - back} ms after Redis answered`);
  t.equal((await call(`${gw.url}/api/rooms/r`)).status, 200, 'the room state is served again');
  t.equal((await join(gw, 'r')).status, 200, 'joins work again');
  // The arrival recording (drop-day replay) holds every join attempt, the ones answered 503 too.
  const rec = await fetch(`${gw.url}/admin/rooms/r/recording`, { headers: { authorization: 'Bearer test-admin-token' } });
  const outcomes = (await rec.text()).trim().split('\n').slice(1).map((l) => (JSON.parse(l) as { outcome: string }).outcome);
  t.same(outcomes, ['joined', 'unavailable', 'unavailable', 'joined'], 'the recording holds the two joins Redis could not take');
});

t.test('Redis hung (SIGSTOP): 503 unavailable, not a hang; back after SIGCONT', async (t) => {
  const redis = await ownRedis(t);
  const gw = await gateway(t, testConfig({ REDIS_URL: redis.url }));
  await putRoom(gw, 'r', { opensAt: new Date(Date.now() - 1000).toISOString(), ...OPEN_LIMITS });
  const v = await join(gw, 'r');
  redis.pause();
  t.teardown(() => redis.resume());
  const slowest = await whileAway(t, gw.url, v.visitorId, 'hung');
  t.comment(`slowest answer while Redis was hung: ${slowest}`);
  redis.resume();
  const back = Date.now();
  await until(async () => (await call(`${gw.url}/healthz`)).status === 200, 10_000, '/healthz 200 after SIGCONT');
  t.comment(`healthy again ${Date.now() - back} ms after SIGCONT`);
  t.match(await join(gw, 'r', v.visitorId), { status: 200, body: { ticket: 1 } }, 'the visitor still holds its place');
});

t.test('Redis restarted empty: the gateway republishes its signing key, so every token it signs verifies', async (t) => {
  const redis = await ownRedis(t);
  const opensAt = Date.parse('2030-01-01T12:00:00.000Z');
  const clock = manualClock(opensAt + 1000);
  const gw = await gateway(t, testConfig({ REDIS_URL: redis.url }), { clock: clock.now });
  const room = { opensAt: new Date(opensAt).toISOString(), admitRatePerMin: 6000, ...OPEN_LIMITS };
  const tokenFor = async () => {
    const v = await join(gw, 'r');
    await gw.admitOnce!();
    clock.advance(1000);
    t.equal(await gw.admitOnce!(), 1, 'admitted');
    const res = await fetch(`${gw.url}/api/rooms/r/claim`, { method: 'POST', headers: { 'x-visitor-id': v.visitorId } });
    t.equal(res.status, 200, 'claimed');
    return ((await res.json()) as { token: string }).token;
  };
  const verify = async (token: string) => {
    const jwks = (await (await fetch(`${gw.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
    return jwtVerify(token, createLocalJWKSet(jwks), { audience: 'checkout', currentDate: new Date(clock.now()) });
  };
  await putRoom(gw, 'r', room);
  const before = await tokenFor();
  await verify(before);

  await redis.kill();
  await redis.start(); // empty: no keys, no rooms
  await until(async () => (await call(`${gw.url}/healthz`)).status === 200, 10_000, 'the gateway reconnected');
  await gw.reloadKeys!(); // what the once-a-second key reload does, now
  const kid = decodeProtectedHeader(before).kid;
  const jwks = (await (await fetch(`${gw.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
  t.ok(jwks.keys.some((k) => k.kid === kid), 'the JWKS still publishes the key the gateway signs with');
  await verify(before);
  t.pass('a token signed before the loss still verifies');

  await putRoom(gw, 'r', room); // the operator re-creates the room Redis forgot
  const after = await tokenFor();
  t.equal(decodeProtectedHeader(after).kid, kid, 'signed with the key held in memory');
  await verify(after);
  t.pass('a token signed after the loss verifies against the JWKS served');
});
