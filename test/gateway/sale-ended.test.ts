/**
 * A sale checkout reports as ended closes its room: the public state says `closed` and the
 * admitter lets nobody else in (a token for an ended sale could only be refused by checkout).
 */
import t from 'tap';
import { saleStockKey, stockChannel } from '../../shared/keys.js';
import { gateway, getJson, join, OPEN_LIMITS, putRoom, testConfig, until } from './helpers.js';

t.test('stock state ended: room closed, nobody admitted', async (t) => {
  const config = testConfig();
  const gw = await gateway(t, config);
  await putRoom(gw, 'r', { sale: 's1', opensAt: new Date(Date.now() - 1000).toISOString(), admitRatePerMin: 6000, ...OPEN_LIMITS });
  for (let i = 0; i < 3; i++) t.equal((await join(gw, 'r')).status, 200);
  await gw.redis.hset(saleStockKey(config.redisPrefix, 's1'), { total: 10, available: 10, reserved: 0, sold: 0, state: 'ended', updatedAt: Date.now() });
  await gw.redis.publish(stockChannel(config.redisPrefix), 's1');
  await until(async () => (await getJson(`${gw.url}/api/rooms/r`)).body.state === 'closed', 2000, 'room closed');
  t.equal(await gw.admitOnce!(), 0, 'nobody admitted into an ended sale');
  t.equal((await getJson(`${gw.url}/api/rooms/r`)).body.admittedThrough, 0);
});
