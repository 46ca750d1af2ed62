/**
 * Gateway and checkout together, over real sockets: a visitor joins the room, claims its
 * admission token from the gateway, and redeems it at checkout (the gateway's JWKS verifies
 * it). The stock signal then holds the room while the unit is reserved and turns it
 * sold_out within 2 s once the unit is paid.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../shared/config.js';
import { startGateway } from '../../waiting-room/server.js';
import { startCheckout } from '../../checkout/main.js';
import { ADMIN, audit, call, productEnv, until } from './helpers.js';

t.test('a token from the real gateway buys the last unit; the room follows the stock', async (t) => {
  const { env, stop } = await productEnv(t, 'e2e');
  const gateway = await startGateway(loadConfig(env));
  stop(() => gateway.close());
  const checkout = await startCheckout(loadConfig({ ...env, JWKS_URL: `${gateway.url}/.well-known/jwks.json` }), { port: 0, provider: { delayMs: 100 } });
  stop(() => checkout.close());

  const now = Date.now();
  const sale = await call(checkout.url, 'PUT', '/admin/sales/e2e', {
    token: ADMIN,
    body: { name: 'E2E', priceCents: 100, currency: 'EUR', total: 1, startsAt: new Date(now - 60_000).toISOString(), endsAt: new Date(now + 3600_000).toISOString() },
  });
  t.equal(sale.status, 201);
  const room = await call(gateway.url, 'PUT', '/admin/rooms/e2e', {
    token: ADMIN,
    body: { sale: 'e2e', opensAt: new Date(now - 1000).toISOString(), prequeueSeconds: 0, checkoutUrl: `${checkout.url}/sales/e2e`, captcha: { mode: 'off', threshold: 1 } },
  });
  t.equal(room.status, 201);

  const join = await call(gateway.url, 'POST', '/api/rooms/e2e/join', { body: {} });
  t.equal(join.status, 200);
  const vid = { 'x-visitor-id': join.body.visitorId };
  const claim = await until(async () => {
    const c = await call(gateway.url, 'POST', '/api/rooms/e2e/claim', { body: {}, headers: vid });
    return c.status === 200 && c.body;
  }, 10_000, 'admission');
  t.equal(claim.checkoutUrl, `${checkout.url}/sales/e2e`);

  const email = `e2e-${randomUUID().slice(0, 6)}@example.com`;
  await call(checkout.url, 'POST', '/api/users', { body: { email, password: 'password123' } });
  const session = (await call(checkout.url, 'POST', '/api/sessions', { body: { email, password: 'password123' } })).body.sessionToken;
  const r = await call(checkout.url, 'POST', '/api/sales/e2e/reservations', { token: session, headers: { 'x-admission-token': claim.token } });
  t.equal(r.status, 201, 'the gateway-signed token is accepted');

  const held = await until(async () => {
    const s = await call(gateway.url, 'GET', '/api/rooms/e2e');
    return s.body.held === true && s.body;
  }, 5_000, 'the room to be held');
  t.equal(held.state, 'open', 'held, not sold out: the unit may still come back');

  const pay = await call(checkout.url, 'POST', `/api/reservations/${r.body.reservationId}/payment`, { token: session, body: { method: 'test_ok' } });
  t.equal(pay.status, 202);
  await until(async () => (await call(gateway.url, 'GET', '/api/rooms/e2e')).body.state === 'sold_out', 5_000, 'the room to turn sold_out');
  const a = await audit(checkout.url, 'e2e');
  t.same([a.ok, a.sold], [true, 1]);
});
