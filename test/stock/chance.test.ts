/**
 * docs/api.md section 7, `chance` before the room has seen any outcome: a visitor within
 * `unitsLeft` of the front is sure of a unit (even if everyone before it reserves, one is left),
 * so GET /me and the position messages say 1; further back there is nothing to go on yet: null.
 * (In a spike the first visitors are admitted before any admission has reserved: they used to be
 * shown null all the way, and the replay's calibration had nothing to say about them.)
 */
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { WebSocket } from 'ws';
import { claimsKey, claimsUsedKey } from '../../shared/keys.js';
import { createRedis, dropPrefix } from '../../shared/redis.js';
import { outlook } from '../../waiting-room/outlook.js';
import type { RoomView } from '../../waiting-room/rooms.js';
import { admitBatch, Gate, joinBatch, queueSnapshot } from '../../waiting-room/scripts.js';
import { call, until } from '../checkout/helpers.js';
import { putSale, putShopRoom, shop } from './helpers.js';

t.test('before any outcome: chance 1 within unitsLeft of the front, null beyond', async (t) => {
  const s = await shop(t, 'chance');
  const gw = s.gateways[0]!;
  await putSale(s, 'c13', { total: 2 });
  // Nobody is admitted (rate 0): nothing is outstanding, unitsLeft is the 2 units, no outcome is ever seen.
  await putShopRoom(s, 'c13', { admitRatePerMin: 0, maxActive: 100 });
  const vids: string[] = [];
  for (let i = 0; i < 4; i++) vids.push((await call(gw, 'POST', '/api/rooms/c13/join', { body: {} })).body.visitorId);
  const me = (i: number, url = gw) => call(url, 'GET', '/api/rooms/c13/me', { headers: { 'x-visitor-id': vids[i]! } });
  await until(async () => (await me(0)).body.unitsLeft === 2, 5000, 'the admitter to see the stock');
  for (const url of s.gateways) {
    const seen = await Promise.all([0, 1, 2, 3].map((i) => me(i, url)));
    t.same(seen.map((m) => [m.body.position, m.body.unitsLeft, m.body.chance]), [[1, 2, 1], [2, 2, 1], [3, 2, null], [4, 2, null]],
      `GET /me on ${url === gw ? 'this' : 'the other'} gateway: positions 1-2 of 2 units left are sure of one, 3-4 have nothing to go on`);
  }

  const ws = new WebSocket(`${gw.replace(/^http/, 'ws')}/api/rooms/c13/ws?vid=${encodeURIComponent(vids[1]!)}`);
  t.teardown(() => ws.terminate());
  const position = await new Promise<any>((resolve, reject) => {
    ws.on('message', (data) => {
      const m = JSON.parse(String(data));
      if (m.type === 'position') resolve(m);
    });
    ws.on('error', reject);
  });
  t.match(position, { position: 2, unitsLeft: 2, chance: 1 }, 'the position message says the same');
});

/**
 * Censoring (docs/chance.md): a reservation is seen within seconds of admission, a lapse only
 * after claimSeconds, so early in a sale with ghosts the room had seen only reservations, took
 * p = 1, and told everyone beyond unitsLeft about 0% (of 1,252 visitors told under 10% in a replay,
 * 24 got a unit). A claim still outstanding past half of claimSeconds without a reservation now
 * counts as a lapse for `chance`. Here, through the admission script itself: 10 admitted for 10
 * units (claimSeconds 20), 2 reserve at once, 8 never do. At +1 s the next visitor's chance is 0
 * (8 outstanding who may all reserve); at +11 s those 8 are past half their claims: p = 2 / 10,
 * and the next visitor is told it will very likely get a unit (it does, once they lapse).
 */
t.test('claims past half of claimSeconds without a reservation count against p (censoring)', async (t) => {
  const redis = createRedis('redis://127.0.0.1:6379');
  const prefix = `t-cens-${randomUUID().slice(0, 8)}`;
  t.teardown(async () => { await dropPrefix(redis, prefix); redis.disconnect(); });
  const room = 'cens';
  const T = Date.now();
  const opensAt = T - 60_000;
  const limits = { ip: { capacity: 1e6, refillPerSec: 1e6 }, subnet: { capacity: 1e6, refillPerSec: 1e6 }, room: { capacity: 1e6, refillPerSec: 1e6 } };
  const vids = Array.from({ length: 30 }, (_, i) => `v${i + 1}`);
  await joinBatch(redis, prefix, room, {
    now: T - 5000, opensAtMs: opensAt, gate: Gate.open, limits, captcha: { mode: 'off', threshold: 100 },
    entries: vids.map((vid, i) => ({ vid, ip: `192.0.2.${i + 1}`, subnet: '192.0.2.0/24', allowListed: false, headerScore: 0, captchaPassed: false, preMember: '', arrivedAt: T - 5000 })),
  });
  const admit = (now: number, available: number, usedCutoff: number) => admitBatch(redis, prefix, room, {
    now, opensAtMs: opensAt, admitRatePerMin: 6000, maxActive: 1000, tokenTtlMs: 600_000, most: 250, gate: Gate.open, fairnessSampleCap: 0,
    available, usedCutoff, overbook: 1, claimMs: 20_000, deliverMs: 0, sale: room,
  });
  await admit(T - 1000, 10, 0); // starts the credit
  t.equal((await admit(T, 10, 0)).admitted.length, 10, '10 admitted for 10 units');
  // Two reserve at once (as checkout reports it: claims -> claims:used at stock version 1).
  for (const vid of ['v1', 'v2']) await redis.multi().zrem(claimsKey(prefix, room), vid).zadd(claimsUsedKey(prefix, room), 1, vid).exec();
  const view = { stock: { available: 8 }, state: 'open', held: false } as unknown as RoomView;
  const chanceAt = async (now: number) => {
    t.equal((await admit(now, 8, 1)).admitted.length, 0, 'the cap holds the line: 8 outstanding for 8 units');
    const snap = await queueSnapshot(redis, prefix, room);
    return { cold: snap.stock!.cold, reserved: snap.stock!.reserved, lapsed: snap.stock!.lapsed, next: outlook(view, snap).chanceAt(1) };
  };
  t.same(await chanceAt(T + 1000), { cold: 0, reserved: 2, lapsed: 0, next: 0 }, 'at +1 s: 2 reserved, 8 young claims: the next visitor 0');
  const late = await chanceAt(T + 11_000);
  t.same([late.cold, late.reserved, late.lapsed], [8, 2, 0], 'at +11 s: the 8 claims past half of claimSeconds are cold');
  t.ok(late.next! >= 0.9, `the next visitor is told ${late.next}: p = 2 / 10, not 1`);
});
