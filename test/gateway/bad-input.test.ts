/** Bad input on every route gets the contract's status and error code, and leaves the queue unchanged. */
import t from 'tap';
import WebSocket from 'ws';
import { ADMIN, adminHeaders, gateway, getJson, join, OPEN_LIMITS, putRoom, testConfig } from './helpers.js';

t.test('bad input on every route', async (t) => {
  const gw = await gateway(t, testConfig());
  await putRoom(gw, 'r', { opensAt: new Date(Date.now() - 1000).toISOString(), ...OPEN_LIMITS });
  const holder = await join(gw, 'r');
  await join(gw, 'r');
  const waiting = await join(gw, 'r');
  const snapshot = async () => {
    const pub = (await getJson(`${gw.url}/api/rooms/r`)).body;
    const cfg = (await getJson(`${gw.url}/admin/rooms/r`, { authorization: `Bearer ${ADMIN}` })).body;
    return { queued: pub.queued, admittedThrough: pub.admittedThrough, state: pub.state, version: cfg.version };
  };
  const before = await snapshot();
  t.same(before, { queued: 3, admittedThrough: 0, state: 'open', version: 1 });

  const call = async (method: string, path: string, body?: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${gw.url}${path}`, { method, body, headers: { 'content-type': 'application/json', ...headers } });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try { json = JSON.parse(text) as Record<string, unknown>; } catch { json = { text }; }
    return { status: res.status, body: json, retryAfter: res.headers.get('retry-after') };
  };
  const expect = async (what: string, p: Promise<{ status: number; body: Record<string, unknown> }>, status: number, error: string, fields: Record<string, unknown> = {}) => {
    const r = await p;
    t.equal(r.status, status, `${what}: ${status}`);
    t.match(r.body, { error, message: String, ...fields }, `${what}: ${error}`);
  };
  const big = JSON.stringify({ captchaToken: 'x'.repeat(5000) });
  const vid = { 'x-visitor-id': holder.visitorId };
  const auth = { authorization: `Bearer ${ADMIN}` };

  // Join
  await expect('join malformed JSON', call('POST', '/api/rooms/r/join', '{"captchaToken":'), 400, 'bad_request');
  await expect('join array body', call('POST', '/api/rooms/r/join', '[]'), 400, 'bad_request');
  await expect('join body over 4 KiB', call('POST', '/api/rooms/r/join', big), 413, 'payload_too_large');
  await expect('join unknown room', call('POST', '/api/rooms/nope/join', '{}'), 404, 'unknown_room');
  await expect('join invalid room name', call('POST', '/api/rooms/no%20pe/join', '{}'), 404, 'unknown_room');
  await expect('join wrong type', call('POST', '/api/rooms/r/join', '{"captchaToken":5}'), 400, 'bad_request', { field: 'captchaToken' });
  await expect('join unknown field', call('POST', '/api/rooms/r/join', '{"ticket":1}'), 400, 'bad_request', { field: 'ticket' });
  await expect('join not JSON content type', call('POST', '/api/rooms/r/join', '<x/>', { 'content-type': 'application/xml' }), 400, 'bad_request');
  // State, me, claim
  await expect('state unknown room', call('GET', '/api/rooms/nope'), 404, 'unknown_room');
  await expect('me unknown room', call('GET', '/api/rooms/nope/me', undefined, vid), 404, 'unknown_room');
  await expect('me without visitor', call('GET', '/api/rooms/r/me'), 404, 'not_in_queue');
  await expect('me forged visitor', call('GET', '/api/rooms/r/me', undefined, { 'x-visitor-id': 'A'.repeat(22) + '.' + 'B'.repeat(22) }), 404, 'not_in_queue');
  await expect('claim unknown room', call('POST', '/api/rooms/nope/claim', '{}', vid), 404, 'unknown_room');
  await expect('claim malformed JSON', call('POST', '/api/rooms/r/claim', '{', vid), 400, 'bad_request');
  await expect('claim over 4 KiB', call('POST', '/api/rooms/r/claim', big, vid), 413, 'payload_too_large');
  await expect('claim not in queue', call('POST', '/api/rooms/r/claim', '{}'), 404, 'not_in_queue');
  await expect('claim before the turn', call('POST', '/api/rooms/r/claim', '{}', { 'x-visitor-id': waiting.visitorId }), 409, 'not_yet', { position: 3 });
  await expect('unknown route', call('GET', '/api/nothing'), 404, 'not_found');
  // WebSocket to an unknown room: the upgrade is refused with 404.
  const wsStatus = await new Promise<number>((resolve) => {
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/api/rooms/nope/ws`);
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate(); });
    ws.on('open', () => { resolve(101); ws.close(); });
    ws.on('error', () => {});
  });
  t.equal(wsStatus, 404, 'WS unknown room: 404');

  // Operator routes
  for (const [m, p] of [['GET', '/admin/rooms'], ['GET', '/admin/rooms/r'], ['PUT', '/admin/rooms/r'], ['POST', '/admin/rooms/r/pause'], ['POST', '/admin/rooms/r/resume'],
    ['GET', '/admin/rooms/r/stats'], ['GET', '/admin/rooms/r/audit'], ['POST', '/admin/keys/rotate']] as const) {
    await expect(`${m} ${p} without token`, call(m, p, m === 'GET' ? undefined : '{"paused":true}'), 401, 'unauthorized');
    await expect(`${m} ${p} wrong token`, call(m, p, m === 'GET' ? undefined : '{"paused":true}', { authorization: `Bearer ${ADMIN}x` }), 401, 'unauthorized');
  }
  const put = (body: string) => call('PUT', '/admin/rooms/r', body, auth);
  await expect('PUT malformed JSON', put('{"maxActive":'), 400, 'bad_request');
  await expect('PUT over 64 KiB', put(JSON.stringify({ allow: Array.from({ length: 6000 }, () => '10.0.0.0/8') })), 413, 'payload_too_large');
  await expect('PUT unknown field', put('{"maxActiv":5}'), 400, 'bad_request', { field: 'maxActiv' });
  await expect('PUT unknown nested field', put('{"limits":{"ip":{"capacity":5,"burst":2}}}'), 400, 'bad_request', { field: 'limits.ip.burst' });
  await expect('PUT wrong type', put('{"admitRatePerMin":"600"}'), 400, 'bad_request', { field: 'admitRatePerMin' });
  await expect('PUT fraction', put('{"maxActive":1.5}'), 400, 'bad_request', { field: 'maxActive' });
  await expect('PUT out of range', put('{"tokenTtlSeconds":100000}'), 400, 'bad_request', { field: 'tokenTtlSeconds' });
  await expect('PUT negative', put('{"prequeueSeconds":-1}'), 400, 'bad_request', { field: 'prequeueSeconds' });
  await expect('PUT bad date', put('{"opensAt":"tomorrow"}'), 400, 'bad_request', { field: 'opensAt' });
  await expect('PUT closesAt before opensAt', put(JSON.stringify({ closesAt: new Date(Date.now() - 86400_000).toISOString() })), 400, 'bad_request', { field: 'closesAt' });
  await expect('PUT bad CIDR', put('{"block":["10.0.0.0/33"]}'), 400, 'bad_request', { field: 'block[0]' });
  await expect('PUT bad CIDR text', put('{"allow":["not-an-ip"]}'), 400, 'bad_request', { field: 'allow[0]' });
  await expect('PUT bad captcha mode', put('{"captcha":{"mode":"sometimes"}}'), 400, 'bad_request', { field: 'captcha.mode' });
  await expect('PUT bad URL', put('{"checkoutUrl":"javascript:alert(1)"}'), 400, 'bad_request', { field: 'checkoutUrl' });
  await expect('PUT bad room name', call('PUT', '/admin/rooms/b%20d', '{}', auth), 400, 'bad_request', { field: 'room' });
  await expect('pause unknown room', call('POST', '/admin/rooms/nope/pause', '{}', auth), 404, 'unknown_room');
  await expect('stats unknown room', call('GET', '/admin/rooms/nope/stats', undefined, auth), 404, 'unknown_room');

  t.same(await snapshot(), before, 'queue length, admission, state and config version unchanged');
  const audit = (await getJson(`${gw.url}/admin/rooms/r/audit`, adminHeaders())).body.entries as unknown[];
  t.equal(audit.length, 1, 'no rejected change reached the audit log');
  t.equal((await join(gw, 'r')).body.ticket, 4, 'the next real join gets the next ticket');
});

t.test('body caps: 4 KiB on public routes, 64 KiB under /admin/ (a room PUT with 1,000 + 1,000 CIDRs fits)', async (t) => {
  const gw = await gateway(t, testConfig());
  await putRoom(gw, 'r', { opensAt: new Date(Date.now() - 1000).toISOString(), ...OPEN_LIMITS });
  const send = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${gw.url}${path}`, { method: path.startsWith('/admin/') ? 'PUT' : 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  const v6 = (i: number) => `2001:db8:${i.toString(16)}:${(i * 7).toString(16)}::/64`;
  const lists = JSON.stringify({ allow: Array.from({ length: 1000 }, (_, i) => v6(i)), block: Array.from({ length: 1000 }, (_, i) => v6(i + 5000)) });
  t.ok(lists.length > 32 * 1024 && lists.length < 64 * 1024, `the lists body is ${lists.length} bytes`);
  const ok = await send('/admin/rooms/r', lists, adminHeaders());
  t.equal(ok.status, 200, 'the admin PUT with the validator\'s largest lists is accepted');
  const cfg = (await ok.json()) as { allow: string[]; block: string[] };
  t.same([cfg.allow.length, cfg.block.length], [1000, 1000]);

  const over = await send('/admin/rooms/r', JSON.stringify({ allow: ['x'.repeat(64 * 1024)] }), adminHeaders());
  t.equal(over.status, 413);
  t.match(await over.json(), { error: 'payload_too_large', message: /64 KiB/ });

  const join5k = await send('/api/rooms/r/join', JSON.stringify({ captchaToken: 'x'.repeat(4100) }));
  t.equal(join5k.status, 413, 'a public route keeps the contract\'s 4 KiB');
  t.match(await join5k.json(), { error: 'payload_too_large', message: /4 KiB/ });
});
