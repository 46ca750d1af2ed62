/**
 * Room states as visitors see them: pause/resume, closed, sold out and held through checkout's
 * stock signal (written here as checkout would), and a config change made on one gateway seen by
 * a second within 2 s.
 */
import t from 'tap';
import WebSocket from 'ws';
import { saleStockKey, stockChannel } from '../../shared/keys.js';
import { ADMIN, adminHeaders, gateway, getJson, join, manualClock, OPEN_LIMITS, putRoom, testConfig, until } from './helpers.js';

interface Msg { type: string; [k: string]: unknown }

function watch(url: string): Promise<{ ws: WebSocket; messages: Msg[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const messages: Msg[] = [];
    ws.on('message', (d) => messages.push(JSON.parse(String(d)) as Msg));
    ws.on('open', () => resolve({ ws, messages }));
    ws.on('error', reject);
  });
}

const post = (url: string) => fetch(url, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });

t.test('pause and resume: visitors told, joins still accepted, admission stops', async (t) => {
  const clock = manualClock(Date.now());
  const gw = await gateway(t, testConfig(), { clock: clock.now });
  await putRoom(gw, 'r', { opensAt: new Date(clock.now() - 1000).toISOString(), admitRatePerMin: 60_000, ...OPEN_LIMITS });
  const a = await join(gw, 'r');
  const w = await watch(`${gw.url.replace('http', 'ws')}/api/rooms/r/ws?vid=${a.visitorId}`);
  t.teardown(() => w.ws.close());
  await until(() => w.messages.find((m) => m.type === 'position'), 2000, 'first position');

  const paused = await post(`${gw.url}/admin/rooms/r/pause`);
  t.equal(paused.status, 200);
  t.match(await paused.json(), { state: 'paused', paused: true });
  await until(() => w.messages.find((m) => m.type === 'state' && m.state === 'paused'), 2000, 'state paused');
  const b = await join(gw, 'r');
  t.match(b, { status: 200, body: { ticket: 2, state: 'paused' } }, 'a paused room still accepts joins');
  await gw.admitOnce!();
  clock.advance(1000);
  t.equal(await gw.admitOnce!(), 0, 'a paused room admits nobody, a second of credit notwithstanding');
  t.equal((await getJson(`${gw.url}/api/rooms/r`)).body.state, 'paused');

  t.equal((await post(`${gw.url}/admin/rooms/r/resume`)).status, 200);
  await until(() => w.messages.find((m) => m.type === 'state' && m.state === 'open'), 2000, 'state open');
  clock.advance(1000);
  t.equal(await gw.admitOnce!(), 2, 'admission resumed: both admitted');
  await until(() => w.messages.find((m) => m.type === 'admitted'), 2000, 'admitted after resume');
  const audit = (await getJson(`${gw.url}/admin/rooms/r/audit`, adminHeaders())).body.entries as { action: string; changes: { field: string; old: unknown; new: unknown }[] }[];
  t.same(audit.map((e) => e.action), ['resume', 'pause', 'create'], 'audit newest first');
  t.same(audit[1]!.changes, [{ field: 'paused', old: false, new: true }], 'with the old and new values');
});

t.test('closed: joins refused with 409 closed, visitors told', async (t) => {
  const gw = await gateway(t, testConfig());
  await putRoom(gw, 'r', { opensAt: new Date(Date.now() - 1000).toISOString(), ...OPEN_LIMITS });
  const a = await join(gw, 'r');
  const w = await watch(`${gw.url.replace('http', 'ws')}/api/rooms/r/ws?vid=${a.visitorId}`);
  t.teardown(() => w.ws.close());
  await putRoom(gw, 'r', { closed: true });
  await until(() => w.messages.find((m) => m.type === 'state' && m.state === 'closed'), 2000, 'state closed');
  t.match(await join(gw, 'r'), { status: 409, body: { error: 'closed' } });
  t.match(await join(gw, 'r', a.visitorId), { status: 200, body: { ticket: 1 } }, 'a visitor holding a place still gets it back');
});

t.test('stock signal: held admits nobody and says so; sold out within 2 s to every waiting visitor', async (t) => {
  const config = testConfig();
  const clock = manualClock(Date.now());
  const gw = await gateway(t, config, { clock: clock.now });
  await putRoom(gw, 'r', { sale: 's1', opensAt: new Date(clock.now() - 1000).toISOString(), admitRatePerMin: 120, ...OPEN_LIMITS });
  const visitors = await Promise.all(Array.from({ length: 5 }, () => join(gw, 'r')));
  const sockets = await Promise.all(visitors.map((v) => watch(`${gw.url.replace('http', 'ws')}/api/rooms/r/ws?vid=${v.visitorId}`)));
  t.teardown(() => sockets.forEach((s) => s.ws.close()));
  const stock = saleStockKey(config.redisPrefix, 's1');
  const signal = async (h: Record<string, number | string>) => {
    await gw.redis.hset(stock, { state: 'active', updatedAt: Date.now(), ...h });
    await gw.redis.publish(stockChannel(config.redisPrefix), 's1');
  };

  await signal({ total: 10, available: 0, reserved: 3, sold: 7 });
  await until(async () => (await getJson(`${gw.url}/api/rooms/r`)).body.held === true, 2000, 'held in public state');
  await gw.admitOnce!();
  clock.advance(1000);
  t.equal(await gw.admitOnce!(), 0, 'held: nobody admitted, a second of credit notwithstanding');
  await gw.positionsOnce!();
  await until(() => sockets[4]!.messages.find((m) => m.type === 'position' && m.held === true), 2000, 'held in position messages');

  await signal({ total: 10, available: 1, reserved: 2, sold: 7 });
  // Each try has a second of credit (2 places at 120/min): the one freed unit admits one.
  t.equal(await until(async () => { clock.advance(1000); return gw.admitOnce!(); }, 2000, 'a freed unit resumes admission'), 1, 'admission resumed');
  // Its admitted message leaves once the admission is marked delivered (one Redis call after the notice).
  await until(() => sockets.some((s) => s.messages.some((m) => m.type === 'admitted')), 2000, 'the admitted visitor told');

  const started = Date.now();
  await signal({ total: 10, available: 0, reserved: 0, sold: 10 });
  const waiting = sockets.filter((s) => !s.messages.some((m) => m.type === 'admitted'));
  t.equal(waiting.length, 4, '4 visitors still waiting');
  await until(() => waiting.every((s) => s.messages.some((m) => m.type === 'state' && m.state === 'sold_out')), 2000, 'every waiting visitor told sold_out');
  t.ok(Date.now() - started < 2000, 'within 2 s');
  t.equal((await getJson(`${gw.url}/api/rooms/r`)).body.state, 'sold_out');
  // A waiting visitor whose socket opens after the announcement (a reload, a reconnect) is told too.
  const late = await watch(`${gw.url.replace('http', 'ws')}/api/rooms/r/ws?vid=${visitors.find((v, i) => waiting.includes(sockets[i]!))!.visitorId}`);
  t.teardown(() => late.ws.close());
  await until(() => late.messages.find((m) => m.type === 'state' && m.state === 'sold_out'), 2000, 'a socket opened after the sell-out told sold_out');
  t.match(await join(gw, 'r'), { status: 409, body: { error: 'sold_out' } });
  t.equal(await gw.admitOnce!(), 0, 'sold out: nobody admitted');
});

t.test('a config change on one gateway is seen by a second within 2 s', async (t) => {
  const config = testConfig();
  const a = await gateway(t, config);
  const b = await gateway(t, config);
  await putRoom(a, 'r', { opensAt: new Date(Date.now() - 1000).toISOString(), admitRatePerMin: 600, ...OPEN_LIMITS });
  t.equal((await getJson(`${b.url}/api/rooms/r`)).body.admitRatePerMin, 600, 'a new room is found on the other gateway at once');
  const started = Date.now();
  await putRoom(a, 'r', { admitRatePerMin: 1200, paused: true });
  await until(async () => {
    const s = (await getJson(`${b.url}/api/rooms/r`)).body;
    return s.admitRatePerMin === 1200 && s.state === 'paused';
  }, 2000, 'the change on the second gateway');
  t.ok(Date.now() - started < 2000, `seen after ${Date.now() - started} ms`);
});
