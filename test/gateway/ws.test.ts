/**
 * A WebSocket client watches its position fall to 1, then receives `admitted` with a token that
 * verifies against the served JWKS with exactly the claims of docs/api.md section 2.
 * Forged, expired and wrong-audience tokens do not verify.
 */
import { generateKeyPair, SignJWT, createRemoteJWKSet, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import t from 'tap';
import WebSocket from 'ws';
import { ADMISSION_AUDIENCE, ADMISSION_ISSUER } from '../../shared/admission.js';
import { gateway, getJson, join, manualClock, OPEN_LIMITS, putRoom, testConfig } from './helpers.js';

interface Msg { type: string; [k: string]: unknown }

function connect(url: string): Promise<{ ws: WebSocket; messages: Msg[]; next(pred: (m: Msg) => boolean, ms?: number): Promise<Msg> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const messages: Msg[] = [];
    const waiters: { pred: (m: Msg) => boolean; res: (m: Msg) => void }[] = [];
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as Msg;
      messages.push(m);
      for (const w of [...waiters]) if (w.pred(m)) { waiters.splice(waiters.indexOf(w), 1); w.res(m); }
    });
    ws.on('open', () => resolve({
      ws, messages,
      next: (pred, ms = 5000) => new Promise((res, rej) => {
        const found = messages.find(pred);
        if (found) return res(found);
        const timer = setTimeout(() => rej(new Error(`no matching message in ${ms} ms; got ${JSON.stringify(messages.slice(-3))}`)), ms);
        waiters.push({ pred, res: (m) => { clearTimeout(timer); res(m); } });
      }),
    }));
    ws.on('error', reject);
  });
}

t.test('position falls to 1, then admitted with a token that verifies against the JWKS', async (t) => {
  const opensAt = Date.parse('2030-01-01T12:00:00.000Z');
  const clock = manualClock(opensAt + 1000);
  const config = testConfig();
  const gw = await gateway(t, config, { clock: clock.now });
  await putRoom(gw, 'r', { sale: 'sale-1', opensAt: new Date(opensAt).toISOString(), admitRatePerMin: 600, tokenTtlSeconds: 300, ...OPEN_LIMITS });
  const ahead = [await join(gw, 'r'), await join(gw, 'r')];
  const me = await join(gw, 'r');
  t.equal(me.body.ticket, 3);
  const c = await connect(`${gw.url.replace('http', 'ws')}/api/rooms/r/ws?vid=${encodeURIComponent(me.visitorId)}`);
  t.teardown(() => c.ws.close());

  const first = await c.next((m) => m.type === 'position');
  t.match(first, { type: 'position', position: 3, admittedThrough: 0, queued: 3, state: 'open', held: false });
  t.equal(first.etaSeconds, 1, '3 places at 600/min: 0.3 s, rounded up');

  await gw.admitOnce!(); // starts the credit clock
  const seen: number[] = [3];
  for (let i = 0; i < 2; i++) {
    clock.advance(100);
    t.equal(await gw.admitOnce!(), 1, 'one admitted per 100 ms at 600/min');
    await gw.positionsOnce!();
    const m = await c.next((x) => x.type === 'position' && x.position === 2 - i);
    seen.push(m.position as number);
  }
  t.same(seen, [3, 2, 1], 'position fell 3, 2, 1 and never rose');

  clock.advance(100);
  t.equal(await gw.admitOnce!(), 1);
  const admitted = await c.next((m) => m.type === 'admitted');
  t.equal(admitted.checkoutUrl, 'http://127.0.0.1:8081/sales/r');
  const token = admitted.token as string;

  const jwks = createRemoteJWKSet(new URL(`${gw.url}/.well-known/jwks.json`));
  const now = Math.floor(clock.now() / 1000);
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: ADMISSION_ISSUER, audience: ADMISSION_AUDIENCE, algorithms: ['EdDSA'], currentDate: new Date(clock.now()) });
  t.equal(protectedHeader.alg, 'EdDSA');
  t.type(protectedHeader.kid, 'string');
  t.same(Object.keys(payload).sort(), ['aud', 'exp', 'iat', 'iss', 'jti', 'room', 'sale', 'sub', 'ticket']);
  t.match(payload, { iss: 'waiting-room', aud: 'checkout', sub: me.visitorId, room: 'r', sale: 'sale-1', ticket: 3, iat: now, exp: now + 300 });
  t.equal(admitted.expiresAt, new Date((now + 300) * 1000).toISOString());

  // The same token on /claim, on /me admitted, and on a reconnect.
  const claim = await fetch(`${gw.url}/api/rooms/r/claim`, { method: 'POST', headers: { 'x-visitor-id': me.visitorId } });
  t.equal(claim.status, 200);
  t.equal(((await claim.json()) as { token: string }).token, token, 'claim returns the same token');
  t.match((await getJson(`${gw.url}/api/rooms/r/me`, { 'x-visitor-id': me.visitorId })).body, { ticket: 3, position: 0, admitted: true });
  const again = await connect(`${gw.url.replace('http', 'ws')}/api/rooms/r/ws?vid=${encodeURIComponent(me.visitorId)}`);
  t.teardown(() => again.ws.close());
  t.equal((await again.next((m) => m.type === 'admitted')).token, token, 'a reconnect gets the token at once');
  const tokens = new Set<string>();
  for (const a of ahead) {
    const r = await fetch(`${gw.url}/api/rooms/r/claim`, { method: 'POST', headers: { 'x-visitor-id': a.visitorId } });
    tokens.add(((await r.json()) as { token: string }).token);
  }
  t.equal(tokens.size, 2, 'the two ahead have their own tokens');

  // Expired: 300 s later (plus checkout's 30 s skew) the token no longer verifies.
  await t.rejects(jwtVerify(token, jwks, { audience: ADMISSION_AUDIENCE, currentDate: new Date(clock.now() + 331_000), clockTolerance: 30 }), { code: 'ERR_JWT_EXPIRED' });
  // Forged: same kid and claims, signed by another key.
  const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const forged = await new SignJWT({ ...payload }).setProtectedHeader({ alg: 'EdDSA', kid: protectedHeader.kid }).sign(privateKey);
  await t.rejects(jwtVerify(forged, jwks, { audience: ADMISSION_AUDIENCE, currentDate: new Date(clock.now()) }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  // Tampered: our signature over other claims.
  const [h, , s] = token.split('.');
  const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, ticket: 1 })).toString('base64url')}.${s}`;
  await t.rejects(jwtVerify(tampered, jwks, { audience: ADMISSION_AUDIENCE, currentDate: new Date(clock.now()) }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  // Wrong audience: signed with the gateway's own key, for another audience.
  const stored = JSON.parse((await gw.redis.hget(`${config.redisPrefix}:keys`, `k:${decodeProtectedHeader(token).kid}`))!) as { d: string; x: string };
  const ourKey = await importJWK({ kty: 'OKP', crv: 'Ed25519', d: stored.d, x: stored.x }, 'EdDSA');
  const wrongAud = await new SignJWT({ ...payload, aud: 'elsewhere' }).setProtectedHeader({ alg: 'EdDSA', kid: protectedHeader.kid }).sign(ourKey);
  await t.rejects(jwtVerify(wrongAud, jwks, { audience: ADMISSION_AUDIENCE, currentDate: new Date(clock.now()) }), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' });
});

t.test('key rotation: new tokens use the new kid, old tokens still verify, both keys published', async (t) => {
  const config = testConfig();
  const clock = manualClock(Date.now());
  const gw = await gateway(t, config, { clock: clock.now });
  await putRoom(gw, 'r', { opensAt: new Date(clock.now() - 1000).toISOString(), admitRatePerMin: 6000, ...OPEN_LIMITS });
  const a = await join(gw, 'r');
  await gw.admitOnce!(); // starts the credit clock
  clock.advance(20);
  t.equal(await gw.admitOnce!(), 1, 'the first visitor admitted');
  const claimA = (await (await fetch(`${gw.url}/api/rooms/r/claim`, { method: 'POST', headers: { 'x-visitor-id': a.visitorId } })).json()) as { token: string };
  const rot = await fetch(`${gw.url}/admin/keys/rotate`, { method: 'POST', headers: { authorization: 'Bearer test-admin-token' } });
  t.equal(rot.status, 200);
  const { kid } = (await rot.json()) as { kid: string };
  const b = await join(gw, 'r');
  clock.advance(20);
  t.equal(await gw.admitOnce!(), 1, 'the second visitor admitted');
  const claimB = (await (await fetch(`${gw.url}/api/rooms/r/claim`, { method: 'POST', headers: { 'x-visitor-id': b.visitorId } })).json()) as { token: string };
  t.equal(decodeProtectedHeader(claimB.token).kid, kid, 'new tokens carry the new kid');
  t.not(decodeProtectedHeader(claimA.token).kid, kid);
  const jwks = createRemoteJWKSet(new URL(`${gw.url}/.well-known/jwks.json`));
  await jwtVerify(claimA.token, jwks, { audience: 'checkout' });
  await jwtVerify(claimB.token, jwks, { audience: 'checkout' });
  const published = (await getJson(`${gw.url}/.well-known/jwks.json`)).body.keys as { kid: string }[];
  t.equal(published.length, 2, 'old and new public keys published');
});

t.test('admitted by one gateway, told on another: the WebSocket lives on a different process than the admitter', async (t) => {
  const config = testConfig();
  const clock = manualClock(Date.now());
  const a = await gateway(t, config, { clock: clock.now });
  const b = await gateway(t, config, { clock: clock.now });
  await putRoom(a, 'r', { opensAt: new Date(clock.now() - 1000).toISOString(), admitRatePerMin: 60_000, ...OPEN_LIMITS });
  const v = await join(a, 'r');
  const c = await connect(`${b.url.replace('http', 'ws')}/api/rooms/r/ws?vid=${encodeURIComponent(v.visitorId)}`);
  t.teardown(() => c.ws.close());
  await c.next((m) => m.type === 'position' && m.position === 1);
  await a.admitOnce!(); // starts the credit clock
  clock.advance(20);
  t.equal(await a.admitOnce!(), 1, 'gateway A admitted the visitor');
  const msg = await c.next((m) => m.type === 'admitted', 2000);
  const claim = await fetch(`${a.url}/api/rooms/r/claim`, { method: 'POST', headers: { 'x-visitor-id': v.visitorId } });
  t.equal(((await claim.json()) as { token: string }).token, msg.token, 'gateway B pushed the token A stored');
});

t.test('a pre-queue WebSocket waits with position null, then learns its drawn place at open', async (t) => {
  const opensAt = Date.parse('2030-01-01T12:00:00.000Z');
  const clock = manualClock(opensAt - 30_000);
  const gw = await gateway(t, testConfig(), { clock: clock.now });
  await putRoom(gw, 'r', { opensAt: new Date(opensAt).toISOString(), prequeueSeconds: 60, ...OPEN_LIMITS });
  const vs = await Promise.all(Array.from({ length: 5 }, () => join(gw, 'r')));
  const c = await connect(`${gw.url.replace('http', 'ws')}/api/rooms/r/ws?vid=${encodeURIComponent(vs[2]!.visitorId)}`);
  t.teardown(() => c.ws.close());
  t.match(await c.next((m) => m.type === 'position'), { position: null, etaSeconds: null, state: 'prequeue', queued: 5 });
  clock.set(opensAt + 10);
  await gw.refreshRooms!();
  await c.next((m) => m.type === 'state' && m.state === 'open');
  await join(gw, 'r'); // the first post-open action fixes the draw
  await gw.positionsOnce!();
  const m = await c.next((x) => x.type === 'position' && typeof x.position === 'number');
  const me = (await getJson(`${gw.url}/api/rooms/r/me`, { 'x-visitor-id': vs[2]!.visitorId })).body;
  t.ok((me.ticket as number) >= 1 && (me.ticket as number) <= 5, 'a drawn ticket among the pre-queue');
  t.equal(m.position, me.ticket, 'the socket got its drawn position');
});

t.test('an admission step pushes positions at once to waiters on every process (no periodic round needed)', async (t) => {
  const config = testConfig();
  // Periodic rounds every 10 minutes: any update seen below comes from the push.
  const clock = manualClock(Date.now());
  const a = await gateway(t, config, { positionIntervalMs: 600_000, clock: clock.now });
  const b = await gateway(t, config, { positionIntervalMs: 600_000, clock: clock.now });
  await putRoom(a, 'r', { opensAt: new Date(clock.now() - 1000).toISOString(), admitRatePerMin: 60, ...OPEN_LIMITS });
  const first = await join(a, 'r');
  const second = await join(b, 'r');
  const third = await join(a, 'r');
  const cs = await Promise.all([second, third].map((v, i) => connect(`${(i ? a : b).url.replace('http', 'ws')}/api/rooms/r/ws?vid=${encodeURIComponent(v.visitorId)}`)));
  t.teardown(() => { for (const c of cs) c.ws.close(); });
  await cs[0]!.next((m) => m.type === 'position' && m.position === 2);
  await cs[1]!.next((m) => m.type === 'position' && m.position === 3);
  await a.admitOnce!(); // starts the credit clock
  clock.advance(1100);
  t.equal(await a.admitOnce!(), 1, 'one admitted: the first visitor');
  const m2 = await cs[0]!.next((m) => m.type === 'position' && m.admittedThrough === 1, 3000);
  t.match(m2, { position: 1, admittedThrough: 1, queued: 2, state: 'open', etaSeconds: 1 });
  const m3 = await cs[1]!.next((m) => m.type === 'position' && m.admittedThrough === 1, 3000);
  t.match(m3, { position: 2, admittedThrough: 1, queued: 2, etaSeconds: 2 });
  t.ok(first.body.ticket === 1);
});
