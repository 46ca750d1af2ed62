/**
 * Admission tokens at the reservation door: every forgery gets its own error code (and
 * reason) and reserves nothing; a jti redeems once; one user gets one unit; sold_out
 * leaves a token usable; a rotated key is picked up by one JWKS refetch.
 */
import t from 'tap';
import { createHmac, randomUUID } from 'node:crypto';
import { generateKeyPair } from 'jose';
import { MAX_TOKEN_TTL_SECONDS } from '../../shared/admission.js';
import { audit, call, createSale, usersWithSessions, world } from './helpers.js';

const reserve = (url: string, session: string, token: string, sale = 'sale1', headers: Record<string, string> = {}) =>
  call(url, 'POST', `/api/sales/${sale}/reservations`, { token: session, headers: { 'x-admission-token': token, ...headers } });

t.test('admission tokens', async (t) => {
  const w = await world(t, 'adm', { jwks: { cooldownMs: 0 } });
  await createSale(w.url, 'sale1', { total: 5 });
  await createSale(w.url, 'other', { total: 5 });
  const users = await usersWithSessions(w, 8);
  const [u0, u1, u2, u3, u4, u5] = users as [typeof users[0], typeof users[0], typeof users[0], typeof users[0], typeof users[0], typeof users[0]];

  await t.test('each forgery has its own code and reason, and reserves nothing', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const payload = { iss: 'waiting-room', aud: 'checkout', sub: 'v1', room: 'room1', sale: 'sale1', ticket: 1, jti: randomUUID(), iat: now, exp: now + 600 };
    const algNone = `${b64({ alg: 'none', kid: w.keys.kid })}.${b64(payload)}.`;
    // HS256 "signed" with the public key: the classic algorithm-confusion forgery.
    const pub = (await (await fetch(w.keys.url)).json()).keys[0];
    const hsInput = `${b64({ alg: 'HS256', kid: w.keys.kid })}.${b64(payload)}`;
    const hs256 = `${hsInput}.${createHmac('sha256', JSON.stringify(pub)).update(hsInput).digest('base64url')}`;
    const hs256x = `${hsInput}.${createHmac('sha256', Buffer.from(pub.x, 'base64url')).update(hsInput).digest('base64url')}`;
    // A real signature moved onto other claims; an all-zero signature (R is the identity, a
    // small-order point); the real signature with S + L (the same point, non-canonical: a
    // malleated copy of a good signature must not pass either).
    const good = await w.keys.sign({});
    const [gh, , gs] = good.split('.') as [string, string, string];
    const swapped = `${gh}.${b64({ ...payload, sub: 'someone-else' })}.${gs}`;
    const zeros = `${gh}.${b64(payload)}.${Buffer.alloc(64).toString('base64url')}`;
    const sig = Buffer.from(gs, 'base64url');
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const S = BigInt(`0x${Buffer.from(sig.subarray(32)).reverse().toString('hex')}`) + L;
    const sPlusL = Buffer.concat([sig.subarray(0, 32), Buffer.from(S.toString(16).padStart(64, '0'), 'hex').reverse()]);
    const malleated = `${good.slice(0, good.lastIndexOf('.'))}.${sPlusL.toString('base64url')}`;
    // Non-canonical encodings of the good token's own signature: Node's decoder reads the same
    // 64 bytes from each (padding skipped, unused trailing bits ignored).
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const lastBits = alphabet[alphabet.indexOf(gs.at(-1)!) ^ 1]!;
    const goodBody = good.slice(0, good.lastIndexOf('.'));
    const cases: [string, string, number, string, string][] = [
      ['signature with = padding', `${good}==`, 403, 'admission_invalid', 'malformed'],
      ['signature with its unused trailing bits set', `${goodBody}.${gs.slice(0, -1)}${lastBits}`, 403, 'admission_invalid', 'malformed'],
      ['signature in standard base64 with padding', `${goodBody}.${sig.toString('base64')}`, 403, 'admission_invalid', 'malformed'],
      ['header with = padding', `${gh}=.${good.split('.')[1]}.${gs}`, 403, 'admission_invalid', 'malformed'],
      ['exp a century ahead', await w.keys.sign({ exp: now + 100 * 365 * 86400 }), 403, 'admission_invalid', 'lifetime_too_long'],
      ['exp - iat one second past the longest room TTL', await w.keys.sign({ iat: now - 1, exp: now + 3600 }), 403, 'admission_invalid', 'lifetime_too_long'],
      ['no iat and exp past the longest room TTL', await w.keys.sign({ iat: undefined, exp: now + 3700 }), 403, 'admission_invalid', 'lifetime_too_long'],
      ['signature of other claims', swapped, 403, 'admission_invalid', 'signature_invalid'],
      ['all-zero signature', zeros, 403, 'admission_invalid', 'signature_invalid'],
      ['signature with S + L', malleated, 403, 'admission_invalid', 'signature_invalid'],
      ['forged signature', await w.keys.sign({}, { key: w.keys.stranger }), 403, 'admission_invalid', 'signature_invalid'],
      ['alg none', algNone, 403, 'admission_invalid', 'alg_not_allowed'],
      ['HS256 with the public JWK', hs256, 403, 'admission_invalid', 'alg_not_allowed'],
      ['HS256 with the raw public key', hs256x, 403, 'admission_invalid', 'alg_not_allowed'],
      ['unknown kid', await w.keys.sign({}, { kid: 'no-such-kid', key: w.keys.stranger }), 403, 'admission_invalid', 'unknown_kid'],
      ['expired beyond the 30 s skew', await w.keys.sign({ exp: now - 31, iat: now - 700 }), 403, 'admission_expired', 'expired'],
      ['wrong aud', await w.keys.sign({ aud: 'gateway' }), 403, 'admission_invalid', 'wrong_audience'],
      ['wrong iss', await w.keys.sign({ iss: 'someone' }), 403, 'admission_invalid', 'wrong_issuer'],
      ['other sale', await w.keys.sign({ sale: 'other' }), 403, 'admission_wrong_sale', 'wrong_sale'],
      ['not a JWT', 'abc.def', 403, 'admission_invalid', 'malformed'],
    ];
    for (const [name, token, status, code, reason] of cases) {
      const r = await reserve(w.url, u0.token, token);
      t.equal(r.status, status, `${name}: status`);
      t.equal(r.body.error, code, `${name}: code`);
      t.equal(r.body.reason, reason, `${name}: reason`);
      t.type(r.body.message, 'string');
    }
    const missing = await call(w.url, 'POST', '/api/sales/sale1/reservations', { token: u0.token });
    t.same([missing.status, missing.body.error], [403, 'admission_invalid']);
    const a = await audit(w.url, 'sale1');
    t.same([a.ok, a.reserved, a.available], [true, 0, 5], 'nothing reserved');
  });

  await t.test('a token living exactly the longest room TTL is accepted', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    t.equal(MAX_TOKEN_TTL_SECONDS, 3600);
    const r = await reserve(w.url, users[7]!.token, await w.keys.sign({ sale: 'other', iat: now, exp: now + MAX_TOKEN_TTL_SECONDS }), 'other');
    t.equal(r.status, 201);
  });

  await t.test('a NUL byte in a claim is a 400 naming the claim, and fails no other request of its batch', async (t) => {
    const bad = [
      ['claims.sub', await w.keys.sign({ sub: 'v\u0000x' })],
      ['claims.room', await w.keys.sign({ room: 'room\u00001' })],
      ['claims.jti', await w.keys.sign({ jti: `${randomUUID()}\u0000` })],
    ] as const;
    const extra = await usersWithSessions(w, 3, 'nul');
    // Sent together: the good ones ride in the same batch as the bad ones.
    const answers = await Promise.all([
      ...bad.map(([, token]) => reserve(w.url, u4.token, token)),
      ...(await Promise.all(extra.map(async (u) => [u, await w.keys.sign({ sale: 'other' })] as const))).map(([u, tok]) => reserve(w.url, u.token, tok, 'other')),
    ]);
    bad.forEach(([field], i) => {
      t.same([answers[i]!.status, answers[i]!.body.error, answers[i]!.body.field], [400, 'bad_request', field], field);
    });
    t.same(answers.slice(bad.length).map((a) => a.status), [201, 201, 201], 'the others reserved');
    const a = await audit(w.url, 'other');
    t.ok(a.ok, 'audit ok');
  });

  await t.test('expired within the 30 s skew is still accepted', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    const r = await reserve(w.url, u5.token, await w.keys.sign({ exp: now - 20 }));
    t.equal(r.status, 201);
  });

  await t.test('session is checked before the token', async (t) => {
    const r = await reserve(w.url, 'not-a-session', 'not-a-token');
    t.same([r.status, r.body.error], [401, 'unauthenticated']);
  });

  await t.test('one user, 20 concurrent reservations with 20 tokens → one reservation', async (t) => {
    const tokens = await Promise.all(Array.from({ length: 20 }, () => w.keys.sign({})));
    const res = await Promise.all(tokens.map((tok) => reserve(w.url, u1.token, tok)));
    t.equal(res.filter((r) => r.status === 201).length, 1);
    t.equal(res.filter((r) => r.status === 409 && r.body.error === 'already_purchased').length, 19);
  });

  await t.test('one token used twice concurrently and in sequence → one reservation, then admission_used', async (t) => {
    const tok = await w.keys.sign({});
    const [a, b] = await Promise.all([reserve(w.url, u2.token, tok), reserve(w.url, u3.token, tok)]);
    t.same([a.status, b.status].sort(), [201, 403]);
    t.equal([a, b].find((r) => r.status === 403)!.body.error, 'admission_used');
    const c = await reserve(w.url, u4.token, tok);
    t.same([c.status, c.body.error], [403, 'admission_used']);
    const d = await reserve(w.url, u2.token, tok);
    t.same([d.status, d.body.error], [403, 'admission_used']);
  });

  await t.test('idempotency-key returns the first answer, even concurrently', async (t) => {
    const [v] = await usersWithSessions(w, 1, 'idem');
    const tok = await w.keys.sign({});
    const h = { 'idempotency-key': `k-${randomUUID()}` };
    const [a, b] = await Promise.all([reserve(w.url, v!.token, tok, 'sale1', h), reserve(w.url, v!.token, tok, 'sale1', h)]);
    t.equal(a.status, 201);
    t.same(b.body, a.body);
    const c = await reserve(w.url, v!.token, tok, 'sale1', h);
    t.same([c.status, c.body], [201, a.body]);
    const other = await reserve(w.url, v!.token, await w.keys.sign({ sale: 'other' }), 'other', h);
    t.same([other.status, other.body.error], [409, 'idempotency_key_reused']);
  });

  await t.test('a retried key gets its first answer even with its token missing, expired or forged', async (t) => {
    await createSale(w.url, 'retry', { total: 1 });
    const [v] = await usersWithSessions(w, 1, 'idem-notoken');
    const h = { 'idempotency-key': `k-${randomUUID()}` };
    const first = await reserve(w.url, v!.token, await w.keys.sign({ sale: 'retry' }), 'retry', h);
    t.equal(first.status, 201);
    const now = Math.floor(Date.now() / 1000);
    const retries = [
      ['missing', ''],
      ['expired', await w.keys.sign({ sale: 'retry', exp: now - 31, iat: now - 700 })],
      ['forged', await w.keys.sign({ sale: 'retry' }, { key: w.keys.stranger })],
    ] as const;
    for (const [what, token] of retries) {
      const r = await reserve(w.url, v!.token, token, 'retry', h);
      t.same([r.status, r.body], [201, first.body], `token ${what}: the first answer`);
    }
    const noKey = await reserve(w.url, v!.token, '', 'retry');
    t.same([noKey.status, noKey.body.error], [403, 'admission_invalid'], 'without the key, a missing token is refused');
  });

  await t.test('sold out leaves a token usable; a used token says admission_used even when sold out', async (t) => {
    const before = await call(w.url, 'GET', '/api/sales/sale1');
    t.equal(before.body.reserved, 4, '4 units reserved above');
    const shrink = await call(w.url, 'PUT', '/admin/sales/sale1', { token: 'test-admin-token', body: { total: 4 } });
    t.same([shrink.body.available, shrink.body.state], [0, 'active'], 'no unit left, some reserved');
    const [late] = await usersWithSessions(w, 1, 'late');
    const tok = await w.keys.sign({});
    const first = await reserve(w.url, late!.token, tok);
    t.same([first.status, first.body.error], [409, 'sold_out']);
    const again = await reserve(w.url, late!.token, tok);
    t.same([again.status, again.body.error], [409, 'sold_out'], 'not admission_used: a refused token is not used up');
    await call(w.url, 'PUT', '/admin/sales/sale1', { token: 'test-admin-token', body: { total: 5 } });
    const ok = await reserve(w.url, late!.token, tok);
    t.equal(ok.status, 201, 'the same token works once a unit is there');
    const reused = await reserve(w.url, users[6]!.token, tok);
    t.same([reused.status, reused.body.error], [403, 'admission_used'], 'sold out, yet the used token is named first');
    const a = await audit(w.url, 'sale1');
    t.same([a.ok, a.reserved, a.available, a.duplicateJtis], [true, 5, 0, 0]);
  });

  await t.test('a rotated key is fetched once; an unknown kid costs one refetch', async (t) => {
    const before = w.keys.fetches();
    const newKid = await w.keys.rotate();
    await call(w.url, 'PUT', '/admin/sales/sale1', { token: 'test-admin-token', body: { total: 6 } });
    const r = await reserve(w.url, users[7]!.token, await w.keys.sign({}, { kid: newKid }));
    t.equal(r.status, 201, 'token signed with the new key accepted');
    t.equal(w.keys.fetches(), before + 1, 'one refetch');
    const again = await reserve(w.url, users[7]!.token, await w.keys.sign({}, { kid: newKid }));
    t.equal(again.body.error, 'already_purchased');
    t.equal(w.keys.fetches(), before + 1, 'known kid: no refetch');
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const bad = await reserve(w.url, users[7]!.token, await w.keys.sign({}, { kid: 'ghost', key: privateKey }));
    t.equal(bad.body.reason, 'unknown_kid');
    t.equal(w.keys.fetches(), before + 2, 'an unknown kid triggers exactly one refetch');
  });

  await t.test('a retried key whose first answer was an error gets that error again, whole', async (t) => {
    t.equal((await call(w.url, 'GET', '/api/sales/sale1')).body.available, 0, 'sale1 has no unit left after the tests above');
    const [v] = await usersWithSessions(w, 1, 'idem-err');
    const h = { 'idempotency-key': `k-${randomUUID()}` };
    const first = await reserve(w.url, v!.token, await w.keys.sign({}), 'sale1', h);
    t.same([first.status, first.body.error], [409, 'sold_out']);
    const retry = await reserve(w.url, v!.token, await w.keys.sign({}), 'sale1', h);
    t.equal(retry.status, 409);
    t.same(retry.body, first.body, 'same code and message as the first answer');
  });
});

t.test('a key rotated in right after a fetch is accepted; made-up kids cost one fetch per cooldown', async (t) => {
  const w = await world(t, 'rot', { jwks: { cooldownMs: 400 } });
  await createSale(w.url, 'sale1', { total: 5 });
  const users = await usersWithSessions(w, 3);
  const first = await reserve(w.url, users[0]!.token, await w.keys.sign({}));
  t.equal(first.status, 201);
  t.equal(w.keys.fetches(), 1);
  const newKid = await w.keys.rotate();
  const rotated = await reserve(w.url, users[1]!.token, await w.keys.sign({}, { kid: newKid }));
  t.equal(rotated.status, 201, 'inside the cooldown, the new kid is waited for, not refused');
  t.equal(w.keys.fetches(), 2);
  const before = w.keys.fetches();
  const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const flood = await Promise.all(
    Array.from({ length: 10 }, async (_, i) => reserve(w.url, users[2]!.token, await w.keys.sign({}, { kid: `made-up-${i}`, key: privateKey }))),
  );
  t.ok(flood.every((r) => r.status === 403 && r.body.reason === 'unknown_kid'), 'every made-up kid refused');
  t.ok(w.keys.fetches() - before <= 2, `10 made-up kids cost ${w.keys.fetches() - before} fetch(es)`);
});
