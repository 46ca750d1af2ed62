/**
 * Checkout's edge (issue 10): invalid text never reaches Postgres (400 bad_request naming the
 * field), dates are ISO-8601 only, the webhook's 413 reports the limit it enforces, malformed
 * URLs and requests Node's parser refuses answer in the contract's shape, and a client that
 * sends its headers slowly is cut off.
 */
import t from 'tap';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { signBody } from '../../checkout/payments/signature.js';
import { WEBHOOK_BODY_LIMIT } from '../../checkout/routes/webhook.js';
import { ADMIN, call, createSale, WEBHOOK_SECRET, world } from './helpers.js';

t.test('checkout input at the edge', async (t) => {
  const w = await world(t, 'input', { timeouts: { headersMs: 300, requestMs: 300, checkEveryMs: 100 } });
  await createSale(w.url, 's');

  await t.test('invalid text is a 400 naming the field', async (t) => {
    const cases: [string, string, string, unknown, string][] = [
      ['POST', '/api/users', '', { email: 'a\u0000b@example.com', password: 'password123' }, 'email'],
      ['POST', '/api/users', '', { email: `${randomUUID()}@example.com`, password: 'password\u0000123' }, 'password'],
      ['POST', '/api/users', '', { email: `${randomUUID()}@example.com`, password: 'password\ud800123' }, 'password'],
      ['POST', '/api/sessions', '', { email: 'a@example.com\u0000', password: 'password123' }, 'email'],
      ['PUT', '/admin/sales/s', ADMIN, { name: 'Drop\u0000' }, 'name'],
      ['PUT', '/admin/sales/s', ADMIN, { name: 'Drop\udc00' }, 'name'],
      ['PUT', '/admin/sales/s', ADMIN, { startsAt: '1' }, 'startsAt'],
      ['PUT', '/admin/sales/s', ADMIN, { endsAt: '2026-13-01T00:00:00Z' }, 'endsAt'],
    ];
    for (const [method, path, token, body, field] of cases) {
      const r = await call(w.url, method, path, { body, ...(token ? { token } : {}) });
      t.same([r.status, r.body.error, r.body.field], [400, 'bad_request', field], `${method} ${path} ${JSON.stringify(body)}`);
    }
    const good = await call(w.url, 'POST', '/api/users', { body: { email: `${randomUUID()}@example.com`, password: 'pass\ud83d\ude00word' } });
    t.equal(good.status, 201, 'an emoji (a surrogate pair) is text');
  });

  await t.test('webhook fields', async (t) => {
    const ev = (over: Record<string, unknown>, data: Record<string, unknown> = {}) =>
      JSON.stringify({ id: `evt_${randomUUID()}`, type: 'payment.failed', created: new Date().toISOString(), data: { paymentId: randomUUID(), amountCents: 1, currency: 'EUR', ...data }, ...over });
    for (const [body, field] of [
      [ev({ id: 'evt\u0000x' }), 'id'],
      [ev({}, { reason: 'no\u0000' }), 'data.reason'],
      [ev({ created: '1' }), 'created'],
    ] as const) {
      const r = await call(w.url, 'POST', '/api/payments/webhook', { raw: body, headers: { 'content-type': 'application/json', 'x-signature': signBody(WEBHOOK_SECRET, body) } });
      t.same([r.status, r.body.error, r.body.field], [400, 'bad_request', field], field);
    }
  });

  await t.test("the webhook's 413 reports the limit it enforces", async (t) => {
    const pad = (n: number) => {
      const base = JSON.stringify({ id: `evt_${randomUUID()}`, type: 'payment.processing', created: new Date().toISOString(), data: { paymentId: randomUUID(), amountCents: 1, currency: 'EUR' }, pad: '' });
      return base.replace('"pad":""', `"pad":"${'x'.repeat(n - base.length)}"`);
    };
    const atLimit = pad(WEBHOOK_BODY_LIMIT);
    const ok = await call(w.url, 'POST', '/api/payments/webhook', { raw: atLimit, headers: { 'content-type': 'application/json', 'x-signature': signBody(WEBHOOK_SECRET, atLimit) } });
    t.same([ok.status, ok.body.outcome], [200, 'unknown_payment'], 'a body of exactly the limit is taken');
    const over = pad(WEBHOOK_BODY_LIMIT + 1);
    const r = await call(w.url, 'POST', '/api/payments/webhook', { raw: over, headers: { 'content-type': 'application/json', 'x-signature': signBody(WEBHOOK_SECRET, over) } });
    t.same([r.status, r.body.error, r.body.limitBytes], [413, 'payload_too_large', WEBHOOK_BODY_LIMIT]);
  });

  await t.test('malformed URLs and requests answer in the contract shape', async (t) => {
    for (const path of ['/api/sales/%E0%A4%A', '/api/sales/%', '/admin/sales/%zz/audit']) {
      const r = await call(w.url, 'GET', path, { token: ADMIN });
      t.same([r.status, r.body.error, typeof r.body.message], [400, 'bad_request', 'string'], path);
    }
    const raw = await rawRequest(w.url, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    t.match(raw, /^HTTP\/1\.1 431 /, 'headers too large: 431');
    t.match(raw, /"error":"headers_too_large"/);
    const bad = await rawRequest(w.url, 'GET /healthz HTTP/1.1\r\nHo st: x\r\n\r\n');
    t.match(bad, /^HTTP\/1\.1 400 [\s\S]*"error":"bad_request"/, 'a header name with a space: 400 bad_request');
  });

  await t.test('a client that sends its headers slowly is cut off', async (t) => {
    const out = await rawRequest(w.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\n', 10_000);
    t.match(out, /^HTTP\/1\.1 408 [\s\S]*"error":"request_timeout"/, 'answered 408 and closed, long before Node\'s 60 s');
  });
});

/** Sends `text` on a fresh socket and resolves with everything the server sent once it closes (rejects after `ms`). */
function rawRequest(base: string, text: string, ms = 5000): Promise<string> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`socket still open after ${ms} ms`));
    }, ms);
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    s.write(text);
  });
}
