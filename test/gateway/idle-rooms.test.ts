/**
 * A room nobody is in costs almost nothing (issue 16): the admitter stops calling its script
 * every tick once it has nobody to admit, and probes it with one HMGET about once a second; the
 * registry stops reloading every room from Redis every second. A join through this process wakes
 * the room at once; a join through another process is admitted within the probe delay. Counted
 * under MONITOR on a redis-server of this test's own.
 */
import t from 'tap';
import { scripts } from '../../shared/scripts.js';
import { IDLE_PROBE_MS } from '../../waiting-room/admitter.js';
import { gateway, getJson, join, OPEN_LIMITS, putRoom, testConfig, until } from './helpers.js';
import { privateRedis, trace } from '../scripts/private-redis.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('idle rooms: no script call per tick, no reload per second; joins still admitted', async (t) => {
  const server = await privateRedis(t);
  const config = testConfig({ REDIS_URL: server.url });
  const a = await gateway(t, config, { admitter: true, admitIntervalMs: 50 });
  const b = await gateway(t, config, { admitter: false });
  const ROOMS = 20;
  const opensAt = new Date(Date.now() - 1000).toISOString();
  for (let i = 0; i < ROOMS; i++) {
    const res = await putRoom(a, `idle${i}`, { sale: `s${i}`, opensAt, admitRatePerMin: 6000, ...OPEN_LIMITS });
    t.equal(res.status, 201);
  }
  await until(async () => (await getJson(`${b.url}/api/rooms/idle${ROOMS - 1}`)).status === 200, 3000, 'the other process to know the rooms');
  await sleep(500); // every room called once, found empty, marked idle
  const monitor = await trace(server);
  const admitSha = scripts().admitBatch.sha;
  const seen = await monitor.during(() => sleep(2000));
  const admitCalls = seen.filter((s) => s.source !== 'lua' && s.args[0]?.toLowerCase() === 'evalsha' && s.args[1] === admitSha).length;
  const probes = seen.filter((s) => s.source !== 'lua' && s.args[0]?.toLowerCase() === 'hmget' && /:q$/.test(s.args[1] ?? '')).length;
  const reloads = seen.filter((s) => s.source !== 'lua' && s.args[0]?.toLowerCase() === 'get' && /:cfg$/.test(s.args[1] ?? '')).length;
  t.comment(`in 2 s with ${ROOMS} idle rooms: ${admitCalls} admission script calls, ${probes} probes, ${reloads} config reads`);
  // Before: 20 rooms x 20 ticks/s x 2 s = 800 script calls and 2 x 20 x 2 = 80 config reads.
  t.equal(admitCalls, 0, 'no admission script call for a room with nobody waiting');
  t.ok(probes > 0 && probes <= ROOMS * Math.ceil(2000 / IDLE_PROBE_MS + 1), `about one probe per room per ${IDLE_PROBE_MS} ms`);
  t.equal(reloads, 0, 'no room config re-read from Redis while nothing changed');

  // A join here wakes the room: the next tick admits.
  const here = await join(a, 'idle3');
  t.equal(here.status, 200);
  t.equal(await a.admitOnce!(), 1, 'a join through this process is admitted on the next tick');

  // A join through the other process: the probe finds it within about a second.
  const there = await join(b, 'idle7');
  t.equal(there.status, 200);
  const t0 = Date.now();
  await until(async () => (await getJson(`${b.url}/api/rooms/idle7/me`, { 'x-visitor-id': there.visitorId })).body.admitted === true, 5000, 'admitted after a join elsewhere');
  t.comment(`admitted ${Date.now() - t0} ms after a join through another process`);

  // A config change on the other process reaches this one at once (pub/sub), not on a reload.
  const res = await putRoom(b, 'idle5', { sale: 's5', opensAt, admitRatePerMin: 6000, paused: true, ...OPEN_LIMITS });
  t.equal(res.status, 200);
  await until(async () => (await getJson(`${a.url}/api/rooms/idle5`)).body.state === 'paused', 1500, 'paused seen by the other process');
});
