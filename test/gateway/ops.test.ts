/** Health, metrics, pages, JWKS and the operator's read routes. */
import t from 'tap';
import { adminHeaders, gateway, getJson, join, OPEN_LIMITS, putRoom, testConfig } from './helpers.js';

t.test('healthz, metrics, pages, JWKS, room list and stats', async (t) => {
  const gw = await gateway(t, testConfig());
  await putRoom(gw, 'r', { opensAt: new Date(Date.now() - 1000).toISOString(), ...OPEN_LIMITS });
  await join(gw, 'r');
  await join(gw, 'r');

  t.same(await getJson(`${gw.url}/healthz`), { status: 200, body: { ok: true, redis: 'up' } });

  const metrics = await fetch(`${gw.url}/metrics`);
  t.equal(metrics.status, 200);
  t.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await metrics.text();
  t.match(text, /wr_joins_total\{room="r",outcome="joined"\} 2/, 'joins by outcome');
  for (const name of ['wr_ws_clients', 'wr_admission_lag_seconds', 'wr_join_batch_size', 'wr_queued', 'wr_admitted_total']) t.match(text, new RegExp(`# TYPE ${name} `), name);

  for (const path of ['/rooms/r', '/admin']) {
    const res = await fetch(`${gw.url}${path}`);
    t.equal(res.status, 200, `${path} served`);
    t.match(res.headers.get('content-type') ?? '', /^text\/html/);
    t.match(await res.text(), /<html/i);
  }

  const jwks = await getJson(`${gw.url}/.well-known/jwks.json`);
  t.match(jwks.body, { keys: [{ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', kid: String, x: String }] });
  t.notOk(JSON.stringify(jwks.body).includes('"d"'), 'no private part published');

  const list = await getJson(`${gw.url}/admin/rooms`, adminHeaders());
  t.match(list.body, { rooms: [{ room: 'r', state: 'open', version: 1 }] });
  const stats = await getJson(`${gw.url}/admin/rooms/r/stats`, adminHeaders());
  t.match(stats.body, { room: 'r', arrivals: 2, joined: 2, queued: 2, admitted: 0, active: 0, rateLimited: 0, challenged: 0 });
  t.equal((stats.body.arrivalsPerSecond as unknown[]).length, 60, 'arrivals per second over the last minute');
});
