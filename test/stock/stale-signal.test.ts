/**
 * Admission with a stale stock signal (docs/api.md section 7). Each gateway reads the sale's signal,
 * then calls admitBatch; a gateway on a loaded machine can pass a signal older than one another
 * gateway's call already applied. That call pruned `claims:used` up to its version, so the older
 * `available` still counts those reserved units as free: before the fix such a call admitted past
 * the stock, and the shoppers it admitted met sold_out at the till (test/stock/admission.test.ts
 * under load: 6-12 prompt shoppers refused, the trace showed a call with version 0 / 20 units
 * after one with version 2 / 4 units). Real Redis, the scripts and checkout's own room notice.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { createRedis } from '../../shared/redis.js';
import { scanKeys } from '../../shared/redis.js';
import { createRoomNotice } from '../../checkout/room-notice.js';
import { admitBatch, Gate, joinBatch, type JoinBatchEntry } from '../../waiting-room/scripts.js';

t.test('a call with an older signal than one already applied admits no more than the newer allows', async (t) => {
  const redis = createRedis('redis://127.0.0.1:6379');
  const prefix = `t-stale-${randomUUID().slice(0, 8)}`;
  t.teardown(async () => {
    const keys = await scanKeys(redis, `${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });
  const room = 'stale';
  const opensAt = Date.now() - 60_000;
  const huge = { capacity: 1_000_000, refillPerSec: 1_000_000 };
  const entry = (i: number): JoinBatchEntry => ({
    vid: `v${i}`, ip: `10.0.${i}.1`, subnet: `10.0.${i}.0/24`, allowListed: false, headerScore: 0, captchaPassed: false, preMember: '', arrivedAt: opensAt + i,
  });
  const joined = await joinBatch(redis, prefix, room, {
    now: opensAt + 1000, opensAtMs: opensAt, gate: Gate.open, limits: { ip: huge, subnet: huge, room: huge }, captcha: { mode: 'off', threshold: 50 },
    entries: Array.from({ length: 10 }, (_, i) => entry(i + 1)),
  });
  t.same(joined.places.map((p) => p.ticket), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'ten in line');

  let now = opensAt + 2000;
  const admit = (available: number, version: number) => admitBatch(redis, prefix, room, {
    now: (now += 1000), opensAtMs: opensAt, admitRatePerMin: 60_000, maxActive: 1000, tokenTtlMs: 600_000, most: 250, gate: Gate.open,
    fairnessSampleCap: 0, available, usedCutoff: version, overbook: 1, claimMs: 120_000, deliverMs: 0, sale: 'stale-sale',
  });
  t.same((await admit(0, 0)).admitted, [], 'signal v0, no unit yet (the first call starts the admission credit)');
  t.same((await admit(3, 1)).admitted.map((a) => a.ticket), [1, 2, 3], 'signal v1, 3 units: three admitted');

  // Checkout: v1 and v2 reserve (commit version 2); the room hears it through checkout's notice.
  const notice = createRoomNotice(redis, prefix, (e) => { throw e; });
  await notice.used({ room, sub: 'v1' }, 2);
  await notice.used({ room, sub: 'v2' }, 2);

  t.same((await admit(1, 2)).admitted, [], 'signal v2 (1 unit, which v3 holds): nobody more');
  t.same((await admit(3, 1)).admitted, [], 'a gateway still passing signal v1 (3 units): nobody more either');
  t.same((await admit(2, 3)).admitted.map((a) => a.ticket), [4], 'a newer signal, v3 (a unit came back: 2): one more');
  t.same((await admit(3, 1)).admitted, [], 'and v1 again changes nothing');
});
