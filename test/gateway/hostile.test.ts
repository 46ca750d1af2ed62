/**
 * Hostile input that used to end the process (one throw inside a uWebSockets.js callback does):
 * a malformed percent-escape in any path segment or query parameter, malformed pub/sub messages,
 * WebSocket frames nobody asked for. Each gets an answer of the contract's shape (or is dropped),
 * and the gateway goes on serving.
 */
import t from 'tap';
import WebSocket from 'ws';
import { admittedChannel, configChannel, stockChannel } from '../../shared/keys.js';
import { ADMIN, gateway, getJson, join, OPEN_LIMITS, putRoom, testConfig, until } from './helpers.js';
import { raw } from './raw.js';

const BAD = '%E0%A4%A';

t.test('a malformed percent-escape in any path segment or query parameter: 400 or 404, never a crash', async (t) => {
  const gw = await gateway(t, testConfig());
  await putRoom(gw, 'r', { opensAt: new Date(Date.now() - 1000).toISOString(), ...OPEN_LIMITS });
  const v = await join(gw, 'r');
  const auth = `authorization: Bearer ${ADMIN}`;
  const requests: [string, string, string?][] = [
    ['GET', `/api/rooms/${BAD}`], ['GET', `/rooms/${BAD}`], ['POST', `/api/rooms/${BAD}/join`, '{}'],
    ['GET', `/api/rooms/${BAD}/me`], ['POST', `/api/rooms/${BAD}/claim`, '{}'], ['GET', `/api/rooms/${BAD}/ws`],
    ['GET', `/api/rooms/r?x=${BAD}`], ['POST', `/api/rooms/r/join?captchaToken=${BAD}`, '{}'], ['GET', `/api/rooms/r/me?vid=${BAD}`],
    ['GET', `/admin/rooms/${BAD}`], ['PUT', `/admin/rooms/${BAD}`, '{}'], ['POST', `/admin/rooms/${BAD}/pause`, '{}'],
    ['GET', `/admin/rooms/${BAD}/stats`], ['GET', `/admin/rooms?x=${BAD}`], ['GET', `/${BAD}`], ['GET', `/healthz?${BAD}`],
    ['GET', '/api/rooms/%'], ['GET', '/api/rooms/%zz'], ['GET', '/api/rooms/%C0%AF'], ['GET', '/api/rooms/%ED%A0%80'],
  ];
  for (const [method, path, body] of requests) {
    for (const headers of ['', `\r\n${auth}`, `\r\nx-visitor-id: ${v.visitorId}`]) {
      const a = await raw(gw.port, `${method} ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json${headers}`, body ?? '');
      const what = `${method} ${path}${headers ? ' +' + headers.slice(2, 15) : ''}: ${a.status}`;
      // A malformed escape where the route reads it: 400/404. In a query parameter a route does not
      // read, the route answers as it would without it.
      t.ok(path.includes('?') ? a.status >= 200 && a.status < 500 : [400, 401, 404].includes(a.status), what);
      if (a.status >= 400) t.match(JSON.parse(a.body) as unknown, { error: /^(bad_request|not_found|unknown_room|unauthorized|not_in_queue)$/, message: String }, what);
    }
  }
  // A WebSocket upgrade with the escape in the room or in ?vid=.
  for (const path of [`/api/rooms/${BAD}/ws`, `/api/rooms/r/ws?vid=${BAD}`]) {
    const a = await raw(gw.port, `GET ${path} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==`);
    t.ok([101, 400, 404].includes(a.status), `upgrade ${path}: ${a.status}`);
  }
  t.same(await getJson(`${gw.url}/healthz`), { status: 200, body: { ok: true, redis: 'up' } }, 'still serving');
  t.match(await join(gw, 'r', v.visitorId), { status: 200, body: { ticket: 1 } }, 'and the queue is as it was');
});

t.test('malformed pub/sub messages are dropped; the gateway goes on serving', async (t) => {
  const config = testConfig();
  const gw = await gateway(t, config);
  await putRoom(gw, 'r', { opensAt: new Date(Date.now() - 1000).toISOString(), ...OPEN_LIMITS });
  const v = await join(gw, 'r');
  const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/api/rooms/r/ws`, { headers: { 'x-visitor-id': v.visitorId } });
  t.teardown(() => ws.close());
  await new Promise((r) => ws.once('open', r));
  const p = config.redisPrefix;
  for (const [channel, message] of [
    [admittedChannel(p, 'r'), 'not json'], [admittedChannel(p, 'r'), '{"room":"r","items":5}'], [admittedChannel(p, 'r'), '{"room":"r","items":[[1,2,3]],"at":"x"}'],
    [admittedChannel(p, 'r'), 'null'], [admittedChannel(p, 'r'), '[]'], [stockChannel(p), '\u0000'], [configChannel(p), '{'],
  ] as const) await (channel.endsWith(':admitted') ? gw.redis.spublish(channel, message) : gw.redis.publish(channel, message));
  await new Promise((r) => setTimeout(r, 100)); // the messages' round trip through Redis
  t.same(await getJson(`${gw.url}/healthz`), { status: 200, body: { ok: true, redis: 'up' } }, 'still serving');
  t.equal((await getJson(`${gw.url}/api/rooms/r`)).status, 200);
});

t.test('WebSocket frames the contract does not define (text, binary, oversized) are ignored or close that socket only', async (t) => {
  const gw = await gateway(t, testConfig());
  await putRoom(gw, 'r', { opensAt: new Date(Date.now() - 1000).toISOString(), ...OPEN_LIMITS });
  const v = await join(gw, 'r');
  const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/api/rooms/r/ws?vid=${encodeURIComponent(v.visitorId)}`);
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  await new Promise((r) => ws.once('open', r));
  ws.send('hello');
  ws.send(Buffer.from([0, 255, 1, 2]));
  ws.send(JSON.stringify({ type: 'admitted', token: 'x' }));
  ws.send('x'.repeat(4096)); // over maxPayloadLength (1 KiB): uWS closes this socket
  t.equal(await closed, 1006, 'the oversized frame closed that socket');
  await until(async () => (await getJson(`${gw.url}/healthz`)).status === 200, 2000, 'still serving');
  t.equal((await getJson(`${gw.url}/api/rooms/r/me`, { 'x-visitor-id': v.visitorId })).body.ticket, 1);
});
