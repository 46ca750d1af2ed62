/**
 * docs/api.md section 7, `chance` before the room has seen any outcome: a visitor within
 * `unitsLeft` of the front is sure of a unit (even if everyone before it reserves, one is left),
 * so GET /me and the position messages say 1; further back there is nothing to go on yet: null.
 * (In a spike the first visitors are admitted before any admission has reserved: they used to be
 * shown null all the way, and the replay's calibration had nothing to say about them.)
 */
import t from 'tap';
import { WebSocket } from 'ws';
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
