/**
 * The gateway's join, admission, claim and WebSocket push, and checkout's stock signal, against a
 * real three-master Redis Cluster (started here from redis-server) and against one Redis: the
 * same observable answers on both.
 */
import t from 'tap';
import WebSocket from 'ws';
import { createRedisClient } from '../../shared/redis.js';
import { roomKeys, saleStockKey } from '../../shared/keys.js';
import { lookupVisitor } from '../../waiting-room/scripts.js';
import { startCheckout } from '../../checkout/main.js';
import { createSale, jwksServer, testDatabase, testConfig as checkoutConfig } from '../checkout/helpers.js';
import { gateway, getJson, join, OPEN_LIMITS, putRoom, testConfig, until } from '../gateway/helpers.js';
import { dropKeys } from '../gateway/helpers.js';
import { redisCluster } from './harness.js';

const backends = ['one Redis', 'Redis Cluster'] as const;

for (const backend of backends) {
  t.test(`${backend}: join, admission, claim and the WebSocket push; checkout's stock signal`, async (t) => {
    const env: Record<string, string> = {};
    if (backend === 'Redis Cluster') env.REDIS_CLUSTER_NODES = (await redisCluster(t)).seeds;
    const config = testConfig(env);
    t.teardown(() => dropKeys(config));
    const gw = await gateway(t, config, { admitter: true, admitIntervalMs: 50 });
    // Two rooms: on a cluster they hash to different slots (and most likely masters).
    const rooms = ['alpha', 'bravo'];
    for (const room of rooms) {
      await putRoom(gw, room, { sale: `sale-${room}`, opensAt: new Date(Date.now() - 1000).toISOString(), admitRatePerMin: 6000, maxActive: 1000, ...OPEN_LIMITS });
    }
    await gw.refreshRooms!();
    for (const room of rooms) {
      const joined = await Promise.all(Array.from({ length: 20 }, () => join(gw, room)));
      t.same(joined.map((j) => j.status), Array(20).fill(200), `${room}: 20 joins answered 200`);
      const tickets = joined.map((j) => Number(j.body.ticket)).sort((a, b) => a - b);
      t.same(tickets, Array.from({ length: 20 }, (_, i) => i + 1), `${room}: tickets 1..20, each once`);
      const again = await join(gw, room, joined[4]!.visitorId);
      t.equal(again.body.ticket, joined[4]!.body.ticket, `${room}: a visitor joining again keeps its ticket`);
    }

    // A visitor on a WebSocket is pushed its token when admitted; /claim gives the same token.
    const late = await join(gw, 'alpha');
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/api/rooms/alpha/ws?vid=${encodeURIComponent(late.visitorId)}`);
    t.teardown(() => ws.terminate());
    const admitted = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no admitted message within 15 s')), 15_000);
      ws.on('message', (raw) => {
        const m = JSON.parse(String(raw)) as Record<string, unknown>;
        if (m.type === 'admitted') { clearTimeout(timer); resolve(m); }
      });
      ws.on('error', reject);
    });
    t.type(admitted.token, 'string', 'admitted over the WebSocket with a token');
    const claim = await fetch(`${gw.url}/api/rooms/alpha/claim`, { method: 'POST', headers: { 'x-visitor-id': late.visitorId, 'content-type': 'application/json' }, body: '{}' });
    t.equal(claim.status, 200);
    t.equal(((await claim.json()) as { token: string }).token, admitted.token, '/claim gives the same token');
    const me = await getJson(`${gw.url}/api/rooms/bravo/me`, { 'x-visitor-id': late.visitorId });
    t.equal(me.status, 404, 'a visitor of one room is not in the other');

    // Checkout on the same backend: a sale's stock signal reaches the room's state.
    const keys = await jwksServer(t);
    const db = await testDatabase(t, 'cluster');
    const coConfig = checkoutConfig(db, keys.url, { REDIS_PREFIX: config.redisPrefix, ...env });
    const co = await startCheckout(coConfig, { port: 0, poolSize: 3 });
    t.teardown(() => co.close());
    await createSale(co.url, 'sale-bravo', { total: 0 });
    const redis = createRedisClient(config);
    t.teardown(() => redis.disconnect());
    const stock = await until(async () => {
      const h = await redis.hgetall(saleStockKey(config.redisPrefix, 'sale-bravo'));
      return h.total !== undefined ? h : null;
    }, 10_000, 'the stock signal');
    t.equal(stock!.total, '0', 'checkout wrote the sale\'s stock signal');
    const room = await until(async () => {
      const r = await getJson(`${gw.url}/api/rooms/bravo`);
      return r.body.state === 'sold_out' ? r : null;
    }, 10_000, 'bravo sold out');
    t.equal(room!.body.state, 'sold_out', 'the gateway heard it: a sale with no stock sells the room out');
  });
}

t.test('Redis Cluster: script calls on keys of two masters, sent in the same tick, each reach their own master', async (t) => {
  const cluster = await redisCluster(t);
  const config = testConfig({ REDIS_CLUSTER_NODES: cluster.seeds });
  const redis = createRedisClient(config);
  t.teardown(() => redis.disconnect());
  // Two rooms whose keys live on different masters (the slot is the room's hash tag).
  const rooms: string[] = [];
  const owners = new Set<number>();
  for (let i = 0; rooms.length < 2; i++) {
    const owner = await cluster.masterOf(roomKeys(config.redisPrefix, `r${i}`).q);
    if (!owners.has(owner)) { owners.add(owner); rooms.push(`r${i}`); }
  }
  // ioredis's auto-pipelining groups a call by the slot of its first argument: for a script
  // that is the key count, not a key, so both calls went into one pipeline and failed.
  const places = await Promise.all(rooms.map((room) => lookupVisitor(redis, config.redisPrefix, room, 'v1', 'v1')));
  t.equal(places.length, 2, 'both answered');
  t.same(places.map((p) => p.kind), ['none', 'none'], 'a visitor unknown to either room');
});
