import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { HCAPTCHA_TEST_SECRET, HCAPTCHA_TEST_SITEKEY, loadConfig } from '../../shared/config.js';
import { createRedis, dropPrefix } from '../../shared/redis.js';
import { roomKeys } from '../../shared/keys.js';
import { defaultRoomConfig, type RoomConfig } from '../../waiting-room/room-config.js';
import { startFakeSiteverify, HCAPTCHA_TEST_RESPONSE } from '../../waiting-room/defence/fake-siteverify.js';
import {
  siteverify, passIsValid, signPass, passSetCookie, readCookie, passCookieName, firstUseOfToken, CaptchaFailures,
} from '../../waiting-room/defence/captcha.js';
import { createDefence, type JoinContext, type PreJoinVerdict } from '../../waiting-room/defence/index.js';

const BROWSER = {
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36',
  accept: 'application/json', 'accept-language': 'en-GB,en;q=0.9',
};

t.test('fake siteverify speaks the protocol', async (t) => {
  const fake = await startFakeSiteverify();
  t.teardown(() => fake.close());
  const post = async (form: Record<string, string>) => {
    const r = await fetch(fake.url, { method: 'POST', body: new URLSearchParams(form) });
    t.equal(r.status, 200);
    return (await r.json()) as { success: boolean; 'error-codes'?: string[]; hostname?: string; challenge_ts?: string };
  };
  const ok = await post({ secret: HCAPTCHA_TEST_SECRET, response: HCAPTCHA_TEST_RESPONSE, sitekey: HCAPTCHA_TEST_SITEKEY });
  t.equal(ok.success, true);
  t.equal(ok.hostname, 'localhost');
  t.ok(!Number.isNaN(Date.parse(ok.challenge_ts!)));
  t.same((await post({ secret: HCAPTCHA_TEST_SECRET, response: HCAPTCHA_TEST_RESPONSE }))['error-codes'], ['invalid-or-already-seen-response']);
  t.same((await post({ secret: HCAPTCHA_TEST_SECRET, response: 'made-up' }))['error-codes'], ['invalid-input-response']);
  t.same((await post({ secret: HCAPTCHA_TEST_SECRET }))['error-codes'], ['missing-input-response']);
  t.same((await post({ secret: 'wrong', response: fake.mint() }))['error-codes'], ['invalid-input-secret']);
  t.same((await post({ response: fake.mint() }))['error-codes'], ['missing-input-secret']);
  t.same((await post({ secret: HCAPTCHA_TEST_SECRET, response: fake.mint(), sitekey: 'other' }))['error-codes'], ['sitekey-secret-mismatch']);
  t.equal((await post({ secret: HCAPTCHA_TEST_SECRET, response: fake.mint() })).success, true);
  t.equal(fake.calls.length, 8);
  t.equal((await fetch(fake.url)).status, 405);
});

t.test('siteverify client: passed, rejected, unavailable (5xx, timeout, unreachable, our keys refused)', async (t) => {
  const fake = await startFakeSiteverify();
  t.teardown(() => fake.close());
  const opts = { url: fake.url, secret: HCAPTCHA_TEST_SECRET, sitekey: HCAPTCHA_TEST_SITEKEY, timeoutMs: 300 };
  const tok = fake.mint();
  t.same(await siteverify(opts, tok, '203.0.113.9'), { kind: 'passed' });
  t.same(fake.calls.at(-1), { secret: HCAPTCHA_TEST_SECRET, response: tok, remoteip: '203.0.113.9', sitekey: HCAPTCHA_TEST_SITEKEY });
  t.same(await siteverify(opts, tok), { kind: 'rejected', codes: ['invalid-or-already-seen-response'] });
  t.same(await siteverify(opts, 'nope'), { kind: 'rejected', codes: ['invalid-input-response'] });
  t.match(await siteverify({ ...opts, secret: 'wrong' }, fake.mint()), { kind: 'unavailable', reason: /invalid-input-secret/ });
  fake.setBehaviour('error');
  t.match(await siteverify(opts, fake.mint()), { kind: 'unavailable', reason: /500/ });
  fake.setBehaviour('hang');
  const started = Date.now();
  t.match(await siteverify(opts, fake.mint()), { kind: 'unavailable', reason: /timed out after 300 ms/ });
  t.ok(Date.now() - started < 5000, 'the timeout bounds the wait');
  // a port nobody listens on
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
  const deadPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  t.match(await siteverify({ ...opts, url: `http://127.0.0.1:${deadPort}/siteverify` }, 'x'), { kind: 'unavailable', reason: /unreachable/ });
  // a 200 that is not the protocol
  const junk = http.createServer((_q, s) => s.end('<html>hi</html>'));
  await new Promise<void>((r) => junk.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => junk.close(() => r())));
  const junkUrl = `http://127.0.0.1:${(junk.address() as AddressInfo).port}/`;
  t.match(await siteverify({ ...opts, url: junkUrl }, 'x'), { kind: 'unavailable' });
});

t.test('remembered pass: bound to key, room, visitor and expiry', async (t) => {
  const now = 1_800_000_000_000;
  const exp = now / 1000 + 60;
  const v = signPass('k1', 'drop', 'vis-1', exp);
  t.ok(passIsValid(v, 'k1', 'drop', 'vis-1', now));
  t.notOk(passIsValid(v, 'k2', 'drop', 'vis-1', now), 'other key');
  t.notOk(passIsValid(v, 'k1', 'other', 'vis-1', now), 'other room');
  t.notOk(passIsValid(v, 'k1', 'drop', 'vis-2', now), 'other visitor');
  t.notOk(passIsValid(v, 'k1', 'drop', 'vis-1', exp * 1000), 'expired');
  t.notOk(passIsValid(`${exp + 3600}.${v.split('.')[1]}`, 'k1', 'drop', 'vis-1', now), 'expiry cannot be stretched');
  t.notOk(passIsValid('garbage', 'k1', 'drop', 'vis-1', now));
  t.notOk(passIsValid(undefined, 'k1', 'drop', 'vis-1', now));
  const set = passSetCookie('k1', 'drop', 'vis-1', now, 60, false);
  t.match(set, /^wr_cp_drop=\d+\.[\w-]+; Max-Age=60; Path=\/; HttpOnly; SameSite=Lax$/);
  const value = readCookie(`a=b; ${set.split(';')[0]}; c=d`, passCookieName('drop'));
  t.equal(value, v);
});

t.test('replay guard and failure window against Redis', async (t) => {
  const prefix = `t-${randomUUID().slice(0, 8)}`;
  const redis = createRedis('redis://127.0.0.1:6379');
  t.teardown(async () => {
    await dropPrefix(redis, prefix);
    redis.disconnect();
  });
  const [a, b] = await Promise.all([firstUseOfToken(redis, prefix, 'tok'), firstUseOfToken(redis, prefix, 'tok')]);
  t.same([a, b].sort(), [false, true], 'exactly one of two concurrent uses is first');
  t.equal(await firstUseOfToken(redis, prefix, 'tok'), false);
  t.equal(await firstUseOfToken(redis, prefix, 'tok2'), true);

  const f = new CaptchaFailures(redis, prefix, { maxFailures: 3, windowSeconds: 60, blockSeconds: 120 });
  const other = new CaptchaFailures(redis, prefix, { maxFailures: 3, windowSeconds: 60, blockSeconds: 120 });
  const now = Date.now();
  for (let i = 1; i <= 3; i++) {
    t.equal(await f.record('198.51.100.4', 'drop', now), false, `failure ${i} does not block`);
    t.equal(await redis.get(roomKeys(prefix, 'drop').ipCaptchaFailures('198.51.100.4')), String(i), 'mirrored into cf');
  }
  t.equal(await f.blocked('198.51.100.4', now), false);
  t.equal(await f.record('198.51.100.4', 'drop', now), true, 'the fourth blocks');
  t.equal(f.blockedHere('198.51.100.4', now), true, 'remembered by this process');
  t.equal(other.blockedHere('198.51.100.4', now), false, 'another process has not seen it');
  t.equal(await other.blocked('198.51.100.4', now), true, '...until it asks Redis');
  t.equal(other.blockedHere('198.51.100.4', now), true);
  t.equal(f.blockedHere('198.51.100.4', now + 121_000), false, 'the block ends');
  t.equal(await f.blocked('198.51.100.5', now), false, 'other IPs are not blocked');
  const ttl = await redis.ttl(roomKeys(prefix, 'drop').ipCaptchaFailures('198.51.100.4'));
  t.ok(ttl > 0 && ttl <= 60, 'the mirrored count expires');
});

t.test('beforeJoin: lists, score, CAPTCHA path, fail modes (module level, real Redis)', async (t) => {
  const prefix = `t-${randomUUID().slice(0, 8)}`;
  const redis = createRedis('redis://127.0.0.1:6379');
  const fake = await startFakeSiteverify({ allowReuse: true });
  t.teardown(async () => {
    await fake.close();
    await dropPrefix(redis, prefix);
    redis.disconnect();
  });
  const env = { REDIS_PREFIX: prefix, HCAPTCHA_VERIFY_URL: fake.url, CAPTCHA_TIMEOUT_MS: '300' };
  const closed = createDefence(loadConfig({ ...env, CAPTCHA_FAIL_MODE: 'closed' }), redis, { failures: { maxFailures: 2 } });
  const open = createDefence(loadConfig({ ...env, CAPTCHA_FAIL_MODE: 'open' }), redis, { failures: { maxFailures: 2 } });
  const room: RoomConfig = {
    ...defaultRoomConfig('drop', 'http://127.0.0.1:8081'),
    allow: ['198.51.100.0/24'], block: ['198.51.0.0/16', '203.0.113.0/24', '203.0.113.64/26'],
    trustedProxies: ['127.0.0.1/32'],
  };
  const now = Date.now();
  const ctx = (over: Partial<JoinContext> = {}): JoinContext => ({
    room, socketIp: '192.0.2.1', headers: BROWSER, visitorId: 'v1', newVisitor: true, now, ...over,
  });
  const stat = async (f: string) => Number((await redis.hget(roomKeys(prefix, 'drop').stats, f)) ?? 0);
  const settle = () => redis.ping();

  t.match(await closed.beforeJoin(ctx({ socketIp: '198.51.7.7' })), { kind: 'blocked', reason: 'block_list' });
  t.match(await closed.beforeJoin(ctx({ socketIp: '198.51.100.7' })), { kind: 'continue', allowListed: true }, 'longer allow prefix wins');
  t.match(await closed.beforeJoin(ctx({ socketIp: '203.0.113.70' })), { kind: 'blocked' });
  t.match(await closed.beforeJoin(ctx({ socketIp: '127.0.0.1', headers: { ...BROWSER, 'x-forwarded-for': '203.0.113.9' } })),
    { kind: 'blocked' }, 'a forwarded address through a trusted proxy is judged');
  t.match(await closed.beforeJoin(ctx({ socketIp: '192.0.2.50', headers: { ...BROWSER, 'x-forwarded-for': '203.0.113.9' } })),
    { kind: 'continue', ip: '192.0.2.50', subnet: '192.0.2.0/24' }, 'a spoofed header from an untrusted peer is ignored');
  await settle();
  t.equal(await stat('blocked'), 3);

  t.match(await closed.beforeJoin(ctx({ headers: {} })), { kind: 'continue', headerScore: 65, captchaPassed: false, setCookies: [] });
  const offRoom = { ...room, captcha: { mode: 'off' as const, threshold: 50 } };
  const callsBefore = fake.calls.length;
  t.match(await closed.beforeJoin(ctx({ room: offRoom, captchaToken: fake.mint() })), { kind: 'continue', captchaPassed: false });
  t.equal(fake.calls.length, callsBefore, 'mode off never calls siteverify');

  // a pass: cookie set, and remembered on the next join without a token
  const pass = (await closed.beforeJoin(ctx({ captchaToken: fake.mint() }))) as Extract<PreJoinVerdict, { kind: 'continue' }>;
  t.match(pass, { kind: 'continue', captchaPassed: true });
  t.equal(pass.setCookies.length, 1);
  const cookie = pass.setCookies[0]!.split(';')[0]!;
  t.match(await closed.beforeJoin(ctx({ headers: { ...BROWSER, cookie } })), { kind: 'continue', captchaPassed: true, setCookies: [] });
  t.match(await closed.beforeJoin(ctx({ visitorId: 'v2', headers: { ...BROWSER, cookie } })), { captchaPassed: false }, 'not for another visitor');

  // replay: the fake would accept it again (allowReuse), the guard refuses without asking
  const tok = fake.mint();
  t.match(await closed.beforeJoin(ctx({ visitorId: 'v3', captchaToken: tok })), { kind: 'continue', captchaPassed: true });
  const n = fake.calls.length;
  t.same(await open.beforeJoin(ctx({ visitorId: 'v4', captchaToken: tok })), { kind: 'captcha_failed', reason: 'replayed' });
  t.equal(fake.calls.length, n, 'siteverify not asked about a replay');
  t.same(await closed.beforeJoin(ctx({ visitorId: 'v5', captchaToken: 'wrong' })), { kind: 'captcha_failed', reason: 'rejected' });

  // hCaptcha down
  fake.setBehaviour('hang');
  t.same(await closed.beforeJoin(ctx({ visitorId: 'v6', socketIp: '192.0.2.2', captchaToken: fake.mint() })),
    { kind: 'captcha_failed', reason: 'unavailable' });
  const o = (await open.beforeJoin(ctx({ visitorId: 'v7', socketIp: '192.0.2.2', captchaToken: fake.mint() }))) as Extract<PreJoinVerdict, { kind: 'continue' }>;
  t.match(o, { kind: 'continue', captchaPassed: true, setCookies: [] }, 'fail open passes this join only, remembering nothing');
  fake.setBehaviour('normal');
  await settle();
  t.equal(await stat('captcha_passed'), 2);
  t.equal(await stat('captcha_failed'), 2);
  t.equal(await stat('captcha_unavailable'), 2);
  const sec = await redis.hgetall(roomKeys(prefix, 'drop').sec(now));
  t.equal(sec.captcha_unavailable, '2');

  // failures of 192.0.2.1 so far: replay + wrong = 2 (max 2); one more blocks it
  t.same(await closed.beforeJoin(ctx({ visitorId: 'v8', captchaToken: 'wrong-again' })), { kind: 'captcha_failed', reason: 'rejected' });
  t.same(await closed.beforeJoin(ctx({ visitorId: 'v9' })), { kind: 'blocked', reason: 'captcha_failures' }, 'blocked without a token, no trip');
  t.same(await open.beforeJoin(ctx({ visitorId: 'v9', captchaToken: fake.mint() })), { kind: 'blocked', reason: 'captcha_failures' },
    'another process learns it on the CAPTCHA path');
  t.match(await closed.beforeJoin(ctx({ socketIp: '192.0.2.3' })), { kind: 'continue' }, 'a neighbour is not blocked');

  const off = createDefence();
  t.same(await off.beforeJoin(ctx({ socketIp: '::ffff:203.0.113.9' })), {
    kind: 'continue', ip: '203.0.113.9', subnet: '203.0.113.0/24', allowListed: false, headerScore: 0, captchaPassed: false, setCookies: [],
  }, 'without config: socket IP only, buckets still apply');
  t.match(await createDefence(undefined, undefined, { off: true }).beforeJoin(ctx({ socketIp: '203.0.113.9' })),
    { kind: 'continue', ip: '203.0.113.9', allowListed: true }, 'the off form skips even the buckets');
});
