/**
 * The checkout API's edges: accounts, operator routes, the sale window, cancel, the stock
 * signal and active set in Redis, request shapes, health and metrics.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { loadConfig } from '../../shared/config.js';
import { ensurePostgres } from '../../checkout/postgres.js';
import { createRedis } from '../../shared/redis.js';
import { activeKey, saleStockKey, stockChannel } from '../../shared/keys.js';
import { ADMIN, audit, call, createSale, until, usersWithSessions, world } from './helpers.js';

t.test('checkout API', async (t) => {
  const w = await world(t, 'api');
  const redis = createRedis(w.config.redisUrl);
  t.teardown(() => redis.disconnect());

  await t.test('accounts', async (t) => {
    const email = `Ann-${randomUUID().slice(0, 6)}@Example.com`;
    const up = await call(w.url, 'POST', '/api/users', { body: { email, password: 'correct horse' } });
    t.equal(up.status, 201);
    t.match(up.body.userId, /^[0-9a-f-]{36}$/);
    t.ok(Date.parse(up.body.expiresAt) > Date.now(), 'sign-up logs the new account in');
    const mine = await call(w.url, 'GET', '/api/sales/x/purchase', { token: up.body.sessionToken });
    t.same([mine.status, mine.body.status], [200, 'none'], "sign-up's session token is accepted");
    t.equal((await call(w.url, 'GET', '/api/sales/x/purchase', { token: `${up.body.sessionToken}x` })).status, 401, 'a tampered one is not');
    const dup = await call(w.url, 'POST', '/api/users', { body: { email: email.toLowerCase(), password: 'another one' } });
    t.same([dup.status, dup.body.error], [409, 'email_taken']);
    for (const body of [{ email: 'nope', password: 'correct horse' }, { email, password: 'short' }, { email, password: 'correct horse', admin: true }, { email }]) {
      const r = await call(w.url, 'POST', '/api/users', { body });
      t.same([r.status, r.body.error], [400, 'bad_request'], JSON.stringify(body));
    }
    const malformed = await call(w.url, 'POST', '/api/users', { raw: '{"email":', headers: { 'content-type': 'application/json' } });
    t.same([malformed.status, malformed.body.error], [400, 'bad_request'], 'malformed JSON');
    const huge = await call(w.url, 'POST', '/api/users', { body: { email, password: 'x'.repeat(20_000) } });
    t.same([huge.status, huge.body.error], [413, 'payload_too_large']);
    const login = await call(w.url, 'POST', '/api/sessions', { body: { email, password: 'correct horse' } });
    t.equal(login.status, 200);
    t.type(login.body.sessionToken, 'string');
    t.ok(Date.parse(login.body.expiresAt) > Date.now());
    const wrong = await call(w.url, 'POST', '/api/sessions', { body: { email, password: 'wrong horse' } });
    t.same([wrong.status, wrong.body.error], [401, 'bad_credentials']);
    const nobody = await call(w.url, 'POST', '/api/sessions', { body: { email: 'nobody@example.com', password: 'wrong horse' } });
    t.same([nobody.status, nobody.body.error], [401, 'bad_credentials'], 'unknown email: the same answer');
    const purchase = await call(w.url, 'GET', '/api/sales/x/purchase', { token: login.body.sessionToken });
    t.same([purchase.status, purchase.body.status], [200, 'none']);
    const anon = await call(w.url, 'GET', '/api/sales/x/purchase', { token: 'forged.session.token' });
    t.same([anon.status, anon.body.error], [401, 'unauthenticated']);
  });

  await t.test('operator routes', async (t) => {
    const noAuth = await call(w.url, 'PUT', '/admin/sales/op', { body: { total: 1 } });
    t.same([noAuth.status, noAuth.body.error], [401, 'unauthorized']);
    const wrongAuth = await call(w.url, 'GET', '/admin/sales/op/audit', { token: 'test-admin-tokeN' });
    t.same([wrongAuth.status, wrongAuth.body.error], [401, 'unauthorized']);
    const incomplete = await call(w.url, 'PUT', '/admin/sales/op', { token: ADMIN, body: { total: 1 } });
    t.same([incomplete.status, incomplete.body.error], [400, 'bad_request']);
    t.ok(incomplete.body.missing.includes('name'));
    const sale = await createSale(w.url, 'op', { total: 2, priceCents: 1500, currency: 'eur' });
    t.same([sale.sale, sale.state, sale.total, sale.available, sale.currency, sale.priceCents], ['op', 'active', 2, 2, 'EUR', 1500]);
    const [u] = await usersWithSessions(w, 1);
    const r = await call(w.url, 'POST', '/api/sales/op/reservations', { token: u!.token, headers: { 'x-admission-token': await w.keys.sign({ sale: 'op' }) } });
    t.equal(r.status, 201);
    const below = await call(w.url, 'PUT', '/admin/sales/op', { token: ADMIN, body: { total: 0 } });
    t.same([below.status, below.body.error, below.body.reserved, below.body.sold], [409, 'stock_below_committed', 1, 0]);
    const raised = await call(w.url, 'PUT', '/admin/sales/op', { token: ADMIN, body: { total: 10 } });
    t.same([raised.status, raised.body.total, raised.body.available, raised.body.reserved], [200, 10, 9, 1]);
    const unknownField = await call(w.url, 'PUT', '/admin/sales/op', { token: ADMIN, body: { totl: 10 } });
    t.same([unknownField.status, unknownField.body.error], [400, 'bad_request']);
    const view = await call(w.url, 'GET', '/api/sales/op');
    t.same([view.status, view.body.available, view.body.reserved, view.body.sold, view.body.name], [200, 9, 1, 0, 'Sale op']);
    const missing = await call(w.url, 'GET', '/api/sales/nope');
    t.same([missing.status, missing.body.error], [404, 'unknown_sale']);
    const a = await audit(w.url, 'op');
    t.same([a.ok, a.total, a.reserved], [true, 10, 1]);
  });

  await t.test('the sale window', async (t) => {
    const now = Date.now();
    await createSale(w.url, 'soon', { startsAt: new Date(now + 3600_000).toISOString(), endsAt: new Date(now + 7200_000).toISOString() });
    await createSale(w.url, 'past', { startsAt: new Date(now - 7200_000).toISOString(), endsAt: new Date(now - 3600_000).toISOString() });
    const [u] = await usersWithSessions(w, 1);
    const soon = await call(w.url, 'POST', '/api/sales/soon/reservations', { token: u!.token, headers: { 'x-admission-token': await w.keys.sign({ sale: 'soon' }) } });
    t.same([soon.status, soon.body.error], [425, 'sale_not_started']);
    const past = await call(w.url, 'POST', '/api/sales/past/reservations', { token: u!.token, headers: { 'x-admission-token': await w.keys.sign({ sale: 'past' }) } });
    t.same([past.status, past.body.error], [410, 'sale_ended']);
    t.equal((await call(w.url, 'GET', '/api/sales/soon')).body.state, 'upcoming');
    t.equal((await call(w.url, 'GET', '/api/sales/past')).body.state, 'ended');
  });

  await t.test('cancel returns the unit at once; signals reach Redis', async (t) => {
    await createSale(w.url, 'c', { total: 1 });
    const [u, v] = await usersWithSessions(w, 2);
    const sub = createRedis(w.config.redisUrl);
    t.teardown(() => sub.disconnect());
    const heard: string[] = [];
    await sub.subscribe(stockChannel(w.config.redisPrefix));
    sub.on('message', (_c, m) => heard.push(m));
    const visitor = `v-${randomUUID()}`;
    await redis.zadd(activeKey(w.config.redisPrefix, 'c-room'), Date.now() + 600_000, visitor);
    const r = await call(w.url, 'POST', '/api/sales/c/reservations', {
      token: u!.token,
      headers: { 'x-admission-token': await w.keys.sign({ sale: 'c', room: 'c-room', sub: visitor }) },
    });
    t.equal(r.status, 201);
    const held = await until(async () => {
      const h = await redis.hgetall(saleStockKey(w.config.redisPrefix, 'c'));
      return h.available === '0' && h;
    }, 3000, 'stock signal after the reservation');
    t.same([held.total, held.reserved, held.sold, held.state], ['1', '1', '0', 'active']);
    await until(async () => heard.includes('c'), 3000, 'the stock change announced');

    const other = await call(w.url, 'DELETE', `/api/reservations/${r.body.reservationId}`, { token: v!.token });
    t.same([other.status, other.body.error], [403, 'forbidden']);
    const unknown = await call(w.url, 'DELETE', `/api/reservations/${randomUUID()}`, { token: u!.token });
    t.same([unknown.status, unknown.body.error], [404, 'unknown_reservation']);
    const badId = await call(w.url, 'DELETE', '/api/reservations/not-a-uuid', { token: u!.token });
    t.same([badId.status, badId.body.error], [400, 'bad_request']);
    const c = await call(w.url, 'DELETE', `/api/reservations/${r.body.reservationId}`, { token: u!.token });
    t.same([c.status, c.body.status], [200, 'cancelled']);
    const view = await call(w.url, 'GET', '/api/sales/c');
    t.same([view.body.available, view.body.reserved], [1, 0], 'unit back at once');
    t.equal(await redis.zscore(activeKey(w.config.redisPrefix, 'c-room'), visitor), null, 'visitor left the active set');
    const h = await redis.hgetall(saleStockKey(w.config.redisPrefix, 'c'));
    t.same([h.available, h.reserved], ['1', '0']);
    const twice = await call(w.url, 'DELETE', `/api/reservations/${r.body.reservationId}`, { token: u!.token });
    t.same([twice.status, twice.body.error, twice.body.status], [409, 'reservation_not_cancellable', 'cancelled']);
    const pay = await call(w.url, 'POST', `/api/reservations/${r.body.reservationId}/payment`, { token: u!.token, body: { method: 'test_ok' } });
    t.same([pay.status, pay.body.error], [409, 'reservation_not_payable']);
    const badMethod = await call(w.url, 'POST', `/api/reservations/${r.body.reservationId}/payment`, { token: u!.token, body: { method: 'visa' } });
    t.same([badMethod.status, badMethod.body.error], [400, 'bad_request']);
    const purchase = await call(w.url, 'GET', '/api/sales/c/purchase', { token: u!.token });
    t.equal(purchase.body.status, 'cancelled');
    t.equal((await audit(w.url, 'c')).ok, true);
  });

  await t.test('health, metrics, unknown routes', async (t) => {
    const h = await call(w.url, 'GET', '/healthz');
    t.same([h.status, h.body.ok], [200, true]);
    const m = await fetch(`${w.url}/metrics`);
    t.equal(m.status, 200);
    t.match(await m.text(), /checkout_reservations_total/);
    const nf = await call(w.url, 'GET', '/nope');
    t.same([nf.status, nf.body.error], [404, 'not_found']);
    const page = await fetch(`${w.url}/sales/op`);
    t.equal(page.status, 200);
    t.match(page.headers.get('content-type') ?? '', /text\/html/);
  });
});

t.test('listen address: 127.0.0.1 by default, every interface with host 0.0.0.0', async (t) => {
  // 127.0.0.2 is a loopback address other than 127.0.0.1: only a wildcard listener answers on it.
  const reach = (port: number) =>
    fetch(`http://127.0.0.2:${port}/healthz`).then(
      (r) => r.status,
      (e: { cause?: { code?: string } }) => e.cause?.code ?? 'error',
    );
  const local = await world(t, 'host1');
  t.equal(await reach(Number(new URL(local.url).port)), 'ECONNREFUSED', 'default: loopback 127.0.0.1 only');
  t.equal((await fetch(`${local.url}/healthz`)).status, 200);
  const all = await world(t, 'host2', { host: '0.0.0.0' });
  t.equal(await reach(Number(new URL(all.url).port)), 200, 'host 0.0.0.0: answers on another address');
  t.match(all.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'its own url (for the webhooks) stays reachable');
});

t.test('production: a DATABASE_URL that does not answer stops start-up; no embedded PostgreSQL', async (t) => {
  const closed = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'checkout-prod-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const secrets = Object.fromEntries(['ADMIN_TOKEN', 'VISITOR_SECRET', 'SESSION_SECRET', 'HCAPTCHA_SECRET', 'PAYMENT_WEBHOOK_SECRET'].map((k) => [k, `prod-${k}`]));
  const config = loadConfig({ ...secrets, NODE_ENV: 'production', DATABASE_URL: `postgres://app:pw@127.0.0.1:${closed}/shop`, DATA_DIR: dataDir });
  const logged: string[] = [];
  await t.rejects(ensurePostgres(config, (m) => logged.push(m)), { message: /NODE_ENV=production.*DATABASE_URL \(postgres:\/\/app:\*\*\*@127\.0\.0\.1:\d+\/shop\)/ });
  t.same(await readdir(dataDir), [], 'nothing initialised under DATA_DIR');
  t.same(logged, [], 'no embedded start announced');
  const up = await new Promise<boolean>((resolve) => {
    const c = net.connect(closed, '127.0.0.1', () => (c.destroy(), resolve(true))).on('error', () => resolve(false));
  });
  t.equal(up, false, 'nothing listens on its port');
});
