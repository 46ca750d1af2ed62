/**
 * Checkout fuzzed (issue 10): every route family of the Fastify checkout over raw sockets
 * against the real Postgres and Redis, with generated paths, headers, bodies, session tokens
 * (real, truncated, re-signed), admission tokens (real, forged, re-signed with the JWKS's own
 * key and odd claims, signed by a stranger), idempotency keys, reservation and payment ids and
 * webhook events with and without valid signatures. Every answer keeps the contract (fuzz.ts
 * `problemOf`); after each family checkout answers /healthz 200 and every sale's audit holds
 * (available + reserved + sold = total, one order per user, one reservation per jti, ...).
 * FUZZ_RUNS / FUZZ_SEED: see fuzz.ts.
 */
import t, { type Test as Tap } from 'tap';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { ERRORS } from '../../checkout/errors.js';
import { signBody } from '../../checkout/payments/signature.js';
import { ADMIN, audit, call, CHEAP_PASSWORD, createSale, usersWithSessions, WEBHOOK_SECRET, world } from '../checkout/helpers.js';
import { rawBytes } from '../gateway/raw.js';
import {
  anyJson, b64, bodyText, hs256, contentType, exchange, fieldOf, fuzz, sometimes, varied, headerJunk, headersOf, junk, mutateToken, oddNumber, problemOf, query, rawHttp, SEED, segment, shaped, tally, type Wire,
} from './fuzz.js';

t.comment(`fast-check seed ${SEED} (FUZZ_SEED=${SEED} replays this run)`);

/** The segment decoded, or as it is when its escapes are malformed. */
function decodedOr(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

t.test('checkout keeps the contract under generated input', async (t) => {
  const w = await world(t, 'fuzz', { sweeper: { tickMs: 200 } });
  const port = Number(new URL(w.url).port);
  const now = Date.now();
  const iso = (ms: number) => new Date(now + ms).toISOString();
  await createSale(w.url, 's', { total: 50 });
  await createSale(w.url, 'tiny', { total: 1 });
  await createSale(w.url, 'soon', { startsAt: iso(3600_000), endsAt: iso(7200_000) });
  await createSale(w.url, 'over', { startsAt: iso(-7200_000), endsAt: iso(-3600_000) });
  const sales = ['s', 'tiny', 'soon', 'over'];
  const users = await usersWithSessions(w, 40, 'fz');
  const sessions = users.map((u) => u.token);
  const userIds = users.map((u) => u.userId);

  // Real ids to aim at: reservations (some with a pending payment the provider never answers).
  const reservationIds: string[] = [];
  const paymentIds: string[] = [];
  for (const u of users.slice(0, 4)) {
    const r = await call(w.url, 'POST', '/api/sales/s/reservations', { token: u.token, headers: { 'x-admission-token': await w.keys.sign({ sale: 's' }) } });
    t.equal(r.status, 201, 'a real reservation');
    reservationIds.push(r.body.reservationId);
  }
  for (const [i, id] of reservationIds.slice(0, 2).entries()) {
    const p = await call(w.url, 'POST', `/api/reservations/${id}/payment`, { token: users[i]!.token, body: { method: 'test_timeout' } });
    t.equal(p.status, 202, 'a pending payment');
    paymentIds.push(p.body.paymentId);
  }

  const count = tally();
  const families: Record<string, number> = {};
  const invariants = async (tt: Tap, family: string) => {
    const h = await call(w.url, 'GET', '/healthz');
    tt.same([h.status, h.body], [200, { ok: true, postgres: true, redis: true }], `after ${family}: /healthz 200`);
    for (const sale of sales) {
      const a = await audit(w.url, sale);
      const v = (await call(w.url, 'GET', `/api/sales/${sale}`)).body;
      tt.ok(a.ok && v.available >= 0 && v.available + v.reserved + v.sold === v.total, `after ${family}: sale ${sale} audits ok (${v.available} + ${v.reserved} + ${v.sold} = ${v.total})`);
      if (!a.ok) tt.comment(JSON.stringify(a));
    }
  };
  const run = async <T>(tt: Tap, family: string, arb: fc.Arbitrary<T>, runs: number, check: (input: T) => Promise<void>, maxRuns?: number) => {
    families[family] = await fuzz(tt, `checkout ${family}`, arb, runs, check, maxRuns);
    await invariants(tt, family);
  };
  const check = (wire: Wire) => exchange(port, ERRORS, wire, count);

  // Session tokens: real, mutated, and re-signed with the session secret over odd claims.
  const nowS = Math.floor(now / 1000);
  const sessionClaims = fc.constantFrom(...userIds).chain((sub) => varied({ sub, iss: 'checkout', aud: 'checkout-session', iat: nowS, exp: nowS + 3600 }, {
    sub: fc.oneof(fc.uuid(), junk, anyJson), iss: fc.oneof(fc.constantFrom('waiting-room', ''), anyJson), aud: fc.constantFrom<unknown>('checkout', ['checkout-session'], null),
    exp: fc.oneof(fc.integer({ min: nowS - 100, max: nowS + 86400 }), oddNumber, junk), iat: oddNumber,
  }));
  const session = fc.oneof(
    { arbitrary: fc.constantFrom(...sessions), weight: 12 },
    { arbitrary: fc.constantFrom(...sessions).chain(mutateToken), weight: 2 },
    { arbitrary: sessionClaims.map((c) => hs256(c)), weight: 10 },
    { arbitrary: fc.tuple(sessionClaims, fc.constantFrom<unknown>({ alg: 'none' }, { alg: 'HS512' }, [], 'x', { alg: 'HS256', crit: ['exp'] })).map(([c, h]) => hs256(c, undefined, h)), weight: 1 },
    { arbitrary: fc.constantFrom(...userIds).map((sub) => hs256({ sub, iss: 'checkout', aud: 'checkout-session', exp: nowS + 3600 }, 'another-secret')), weight: 1 },
  );
  const bearer = fc.oneof(
    { arbitrary: session.map((s) => `Bearer ${s}`), weight: 12 },
    { arbitrary: session.map((s) => `bearer ${s}`), weight: 1 },
    { arbitrary: fc.constantFrom('Bearer', 'Bearer ', `Bearer ${ADMIN}`, 'Basic x'), weight: 1 },
    { arbitrary: headerJunk, weight: 1 },
  );
  const adminAuth = fc.oneof(
    { arbitrary: fc.constant(`Bearer ${ADMIN}`), weight: 6 },
    { arbitrary: fc.constantFrom(`bearer ${ADMIN}`, `Bearer ${ADMIN}x`, `Bearer ${ADMIN.slice(0, -1)}`, ADMIN, 'Bearer ', `Bearer ${ADMIN}\u00e9`), weight: 2 },
    { arbitrary: bearer, weight: 1 },
  );
  const header = (values: Record<string, fc.Arbitrary<string>>) => headersOf(values, ['user-agent', 'accept', 'x-forwarded-for', 'cookie', 'accept-encoding', 'x']);
  const idemKey = fc.oneof(fc.uuid().map(String), fc.constantFrom('k1', 'k2', 'a'.repeat(200), 'a'.repeat(201), ' ', ''), headerJunk);

  // Admission tokens, signed at check time: claims (good or odd) and how to sign and spoil them.
  const admission = fc.record({
    claims: fc.oneof(
      // '$SALE': the sale of the request's URL.
      { arbitrary: fc.record({ sale: fc.constantFrom('$SALE', '$SALE', '$SALE', ...sales) }) as fc.Arbitrary<Record<string, unknown>>, weight: 4 },
      {
        // keys.sign fills in valid claims; `undefined` drops one.
        arbitrary: varied({ sale: '$SALE' }, {
          sale: fc.oneof(fc.constantFrom('$SALE', ...sales), junk, anyJson), sub: fc.oneof(junk, anyJson, fc.constant(undefined)), room: fc.oneof(junk, anyJson, fc.constant(undefined)),
          jti: fc.oneof(fc.uuid(), junk, fc.constant('jti-1'), anyJson, fc.constant(undefined)), ticket: fc.oneof(fc.nat(), anyJson, fc.constant(undefined)),
          iss: fc.constantFrom('checkout', '', undefined), aud: fc.constantFrom<unknown>(['checkout', 'x'], 'x', [], undefined),
          exp: fc.oneof(fc.integer({ min: nowS - 120, max: nowS + 4000 }), oddNumber, junk, fc.constant(undefined)), iat: fc.oneof(fc.integer({ min: nowS - 4000, max: nowS + 120 }), oddNumber, fc.constant(undefined)), nbf: oddNumber,
        }),
        weight: 3,
      },
    ),
    key: fc.constantFrom('jwks', 'jwks', 'jwks', 'jwks', 'stranger', 'unknown kid'),
    spoil: sometimes(fc.tuple(fc.constantFrom('cut', 'flip', 'pad', 'space', 'alg', 'dots'), fc.nat()), 4),
    junk: sometimes(headerJunk, 8),
  });
  type Admission = typeof admission extends fc.Arbitrary<infer A> ? A : never;
  const signAdmission = async (a: Admission, sale: string): Promise<string> => {
    if (a.junk !== null) return a.junk;
    const tok = await w.keys.sign({ ...a.claims, ...(a.claims.sale === '$SALE' ? { sale } : {}) }, a.key === 'stranger' ? { key: w.keys.stranger } : a.key === 'unknown kid' ? { kid: 'k-unknown' } : {});
    if (!a.spoil) return tok;
    const [how, n] = a.spoil;
    const i = n % tok.length;
    switch (how) {
      case 'cut': return tok.slice(0, i);
      case 'flip': return tok.slice(0, i) + (tok[i] === 'A' ? 'B' : 'A') + tok.slice(i + 1);
      case 'pad': return `${tok}=`;
      case 'space': return ` ${tok} `;
      case 'alg': return `${b64({ alg: 'none', kid: w.keys.kid })}.${tok.split('.')[1]}.`;
      default: return tok.replaceAll('.', '..');
    }
  };
  const shopper = header({ authorization: bearer, 'content-type': contentType, 'idempotency-key': idemKey });
  // A reservation gets past the session check often enough to reach the token, the batch and the stock.
  const buyer = header({ authorization: fc.oneof({ arbitrary: fc.constantFrom(...sessions).map((s) => `Bearer ${s}`), weight: 6 }, { arbitrary: bearer, weight: 2 }), 'idempotency-key': idemKey });
  const saleSeg = segment([...sales, 'nope', 'a.b', 'x'.repeat(64), 'x'.repeat(65)]);
  const idSeg = (pool: string[]) => fc.oneof(
    { arbitrary: fc.nat().map((n) => pool[n % pool.length]!), weight: 4 },
    { arbitrary: fc.uuid().map(String), weight: 1 },
    { arbitrary: fc.constantFrom('00000000-0000-0000-0000-000000000000', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', randomUUID().toUpperCase(), `{${randomUUID()}}`, randomUUID().replaceAll('-', '')), weight: 1 },
    { arbitrary: segment(['x']), weight: 1 },
  );

  await t.test('paths: any method, any path, any query', async (t) => {
    const known = ['', 'api', 'sales', 'users', 'sessions', 'reservations', 'payment', 'payments', 'webhook', 'purchase', 'admin', 'audit', 'healthz', 'metrics', 'openapi.json', 'documentation', ...sales];
    const arb = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'TRACE', 'BREW', 'get'),
      segs: fc.array(segment(known), { minLength: 1, maxLength: 6 }),
      q: query(['x', 'sale', 'id']),
      headers: fc.oneof(shopper, header({ authorization: adminAuth, 'content-type': contentType })),
      body: fc.option(bodyText(fc.object()), { freq: 2 }),
    });
    await run(t, 'paths', arb, 300, async ({ method, segs, q, headers, body }) => {
      await check({ method, target: `/${segs.join('/')}${q}`, headers, body: body ?? undefined });
    });
  });

  await t.test('accounts: sign up and log in', async (t) => {
    const email = fc.oneof(
      { arbitrary: fc.constantFrom(...users.map((u) => u.email), 'A@EXAMPLE.COM', ' a@example.com '), weight: 2 },
      { arbitrary: fc.emailAddress(), weight: 2 },
      { arbitrary: fc.tuple(junk, junk).map(([a, b]) => `${a}@${b}.com`), weight: 2 },
      { arbitrary: junk, weight: 1 },
    );
    const password = fc.oneof(fc.constant(CHEAP_PASSWORD), fc.string({ minLength: 8, maxLength: 30 }), junk);
    const arb = fc.record({
      path: fc.constantFrom('/api/users', '/api/sessions'),
      headers: header({ 'content-type': contentType, authorization: bearer }),
      body: bodyText(shaped({ email, password })),
    });
    await run(t, 'accounts', arb, 150, async ({ path, headers, body }) => {
      await check({ method: 'POST', target: path, headers, body });
    });
  });

  await t.test('sales: the sale, the purchase, the page', async (t) => {
    const arb = fc.record({
      route: fc.constantFrom('/api/sales/:sale', '/api/sales/:sale/purchase', '/api/sales/:sale/purchase', '/sales/:sale'),
      sale: fc.oneof({ arbitrary: fc.constantFrom(...sales), weight: 3 }, { arbitrary: saleSeg, weight: 1 }),
      q: query(['x']),
      method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD'),
      headers: fc.oneof({ arbitrary: header({ authorization: session.map((s) => `Bearer ${s}`) }), weight: 3 }, { arbitrary: shopper, weight: 1 }),
    });
    await run(t, 'sales', arb, 250, async ({ route, sale, q, method, headers }) => {
      await check({ method, target: `${route.replace(':sale', sale)}${q}`, headers });
    });
  });

  await t.test('reservations: reserve, pay, cancel', async (t) => {
    const arb = fc.oneof(
      {
        arbitrary: fc.record({
          kind: fc.constant('reserve' as const), sale: fc.oneof({ arbitrary: fc.constantFrom('s', 'tiny'), weight: 3 }, { arbitrary: saleSeg, weight: 1 }),
          headers: buyer, admission, body: sometimes(fc.tuple(contentType, bodyText(anyJson)), 4),
          tokenHeader: fc.constantFrom('x-admission-token', 'x-admission-token', 'X-Admission-Token', 'x-admission-tokens'),
        }),
        weight: 3,
      },
      {
        arbitrary: fc.record({
          kind: fc.constantFrom('pay' as const, 'cancel' as const), id: idSeg(reservationIds), headers: shopper,
          body: bodyText(shaped({ method: fc.constantFrom('test_ok', 'test_decline', 'test_timeout', 'TEST_OK', 'card') })),
        }),
        weight: 2,
      },
    );
    await run(t, 'reservations', arb, 500, async (input) => {
      if (input.kind === 'reserve') {
        const headers: [string, string][] = [...input.headers, [input.tokenHeader, await signAdmission(input.admission, decodedOr(input.sale))]];
        if (input.body) headers.push(['content-type', input.body[0]]);
        const a = await check({ method: 'POST', target: `/api/sales/${input.sale}/reservations`, headers, body: input.body?.[1] });
        const id = a.status === 201 ? (JSON.parse(a.body) as { reservationId?: string }).reservationId : undefined;
        if (id) reservationIds.push(id);
        return;
      }
      const pay = input.kind === 'pay';
      const a = await check({ method: pay ? 'POST' : 'DELETE', target: `/api/reservations/${input.id}${pay ? '/payment' : ''}`, headers: input.headers, body: pay ? input.body : undefined });
      const pid = a.status === 202 ? (JSON.parse(a.body) as { paymentId?: string }).paymentId : undefined;
      if (pid) paymentIds.push(pid);
    });
  });

  await t.test('payment webhooks, signed and not', async (t) => {
    const event = shaped({
      id: fc.oneof(fc.uuid().map((u) => `evt_${u}`), fc.constant('evt_1'), junk),
      type: fc.constantFrom('payment.processing', 'payment.succeeded', 'payment.failed', 'payment.refunded', 'charge.succeeded'),
      created: fc.oneof(fc.constant(new Date(now).toISOString()), fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.constantFrom('1', '2026-02-30T00:00:00Z', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59Z')),
      data: shaped({
        paymentId: fc.oneof(fc.constant('$PAYMENT'), fc.uuid()), reservationId: fc.oneof(fc.constant('$RESERVATION'), fc.uuid()),
        amountCents: fc.oneof(fc.constantFrom(4999, 0, 1), fc.integer({ min: 0, max: 100_000_000 })), currency: fc.constantFrom('EUR', 'USD', 'eur', 'EURO'), reason: junk,
      }),
    });
    const SIGS = ['valid', 'valid', 'valid', 'VALID', 'none', 'other secret', 'truncated', 'other body', 'junk', 'twice'] as const;
    const arb = fc.record({
      body: bodyText(event),
      pick: fc.nat(),
      sig: fc.constantFrom(...SIGS),
      headers: header({ 'content-type': contentType, 'x-signature': headerJunk }),
    });
    await run(t, 'webhook', arb, 400, async ({ body, pick, sig, headers }) => {
      const text = body.replaceAll('$PAYMENT', paymentIds[pick % paymentIds.length]!).replaceAll('$RESERVATION', reservationIds[pick % reservationIds.length]!);
      const good = signBody(WEBHOOK_SECRET, text);
      const signatures: Record<(typeof SIGS)[number], string | null> = {
        valid: good, VALID: good.toUpperCase(), none: null, 'other secret': signBody('x', text), truncated: good.slice(0, 63), 'other body': signBody(WEBHOOK_SECRET, `${text} `), junk: null, twice: good,
      };
      const hs: [string, string][] = sig === 'junk' ? headers : headers.filter(([n]) => n !== 'x-signature');
      if (signatures[sig]) hs.push(['x-signature', signatures[sig]]);
      if (sig === 'twice') hs.push(['x-signature', good]);
      await check({ method: 'POST', target: '/api/payments/webhook', headers: hs, body: text });
    });
  });

  await t.test('operator routes: sales and audits', async (t) => {
    const date = fc.oneof(
      fc.integer({ min: -86400_000, max: 86400_000 }).map(iso),
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      fc.constantFrom('1', 'tomorrow', '2026-02-30T00:00:00Z', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '2026-01-01T00:00:00+14:00', '2026-01-01 00:00:00Z', '2026-01-01T00:00:00.123456789Z'),
    );
    const saleBody = shaped({
      name: fieldOf(junk), priceCents: fc.oneof(fc.integer({ min: 0, max: 100_000_000 }), oddNumber), currency: fc.constantFrom('EUR', 'usd', 'EU', 'EURO', '€€€'),
      total: fc.oneof(fc.integer({ min: 0, max: 60 }), oddNumber), startsAt: date, endsAt: date, reservationSeconds: fc.oneof(fc.integer({ min: 1, max: 86_400 }), oddNumber),
    });
    const arb = fc.record({
      route: fc.constantFrom('PUT /admin/sales/:sale', 'PUT /admin/sales/:sale', 'GET /admin/sales/:sale/audit', 'GET /admin/sales/:sale', 'POST /admin/sales/:sale'),
      sale: segment([...sales, 'a1', 'a2', 'a3']),
      headers: header({ authorization: adminAuth, 'content-type': contentType }),
      body: bodyText(saleBody),
    });
    await run(t, 'operator', arb, 300, async ({ route, sale, headers, body }) => {
      const [method, p] = route.split(' ') as [string, string];
      await check({ method, target: p.replace(':sale', sale), headers, body: method === 'GET' ? undefined : body });
    });
  });

  await t.test('framing that is not HTTP', async (t) => {
    await run(t, 'framing', rawHttp, 40, async (text) => {
      // Node's parser answers what it refuses (400, 431): a close without an answer is allowed, a hang is not.
      const a = await rawBytes(port, Buffer.from(text, 'utf8'), 1000);
      // (Blank lines before a request are skipped, RFC 9112 2.2: those wait for one, as a short chunked body does.)
      if (a.end === 'timeout' && a.status === 0 && !text.includes('chunked') && !/^(\r\n)+$/.test(text)) throw new Error(`no answer to ${JSON.stringify(text)}`);
      const p = a.status ? problemOf(ERRORS, { method: 'GET', target: '/', headers: [] }, a, count) : null;
      if (p) throw new Error(`${p}\n  request: ${JSON.stringify(text)}`);
    }, 60); // a fixed list: more runs would only repeat it
  });

  const tried = Object.values(families).reduce((a, b) => a + b, 0);
  t.comment(`checkout: ${tried} inputs in all (${Object.entries(families).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  t.comment(`checkout answers by status: ${JSON.stringify(count.statuses)}; ${count.dropped} malformed requests dropped unanswered; ${count.unavailable} 503 unavailable`);
  t.comment(`checkout ids: ${reservationIds.length} reservations, ${paymentIds.length} payments`);
});
