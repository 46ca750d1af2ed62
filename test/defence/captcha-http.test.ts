/**
 * CAPTCHA through the gateway: `always` challenges, the local fake siteverify decides,
 * replays are refused by the gateway itself, and hCaptcha being down does what
 * CAPTCHA_FAIL_MODE says.
 */
import t from 'tap';
import { startFakeSiteverify } from '../../waiting-room/defence/fake-siteverify.js';
import { HCAPTCHA_TEST_SITEKEY } from '../../shared/config.js';
import { fixture, openRoom, request, within, BROWSER } from './fixture.js';

const ALWAYS = { captcha: { mode: 'always', threshold: 50 } };

t.test('mode always: challenged, accepted, rejected, replayed', async (t) => {
  // allowReuse: the fake would accept a token again, so a refused replay is the gateway's doing
  const fake = await startFakeSiteverify({ allowReuse: true });
  t.teardown(() => fake.close());
  const f = fixture(t);
  const gw = await f.start({ HCAPTCHA_VERIFY_URL: fake.url });
  await gw.put('cap', openRoom(f.clock.now, ALWAYS));

  const challenged = await gw.join('cap', { from: '127.0.9.1' });
  t.equal(challenged.status, 403);
  t.equal(challenged.body.error, 'captcha_required');
  t.equal(challenged.body.siteKey, HCAPTCHA_TEST_SITEKEY);
  t.equal(fake.calls.length, 0, 'no token, no siteverify call');

  const token = fake.mint();
  const joined = await gw.join('cap', { from: '127.0.9.1', captchaToken: token });
  t.equal(joined.status, 200, JSON.stringify(joined.body));
  t.equal(joined.body.ticket, 1);
  t.equal(fake.calls.length, 1);
  t.equal(fake.calls[0]!.response, token);
  t.equal(fake.calls[0]!.remoteip, '127.0.9.1', 'the client IP goes to hCaptcha');
  const setCookie = ([] as string[]).concat(joined.headers['set-cookie'] ?? []);
  const pass = setCookie.find((c) => c.startsWith('wr_cp_cap='));
  t.ok(pass, 'a remembered pass is set');

  // the pass is remembered: the same visitor joining again needs no token and no siteverify call
  const again = await gw.join('cap', {
    from: '127.0.9.1',
    headers: { ...BROWSER, 'x-visitor-id': String(joined.body.visitorId), cookie: pass!.split(';')[0]! },
  });
  t.equal(again.status, 200);
  t.equal(again.body.ticket, 1, 'same place');
  t.equal(fake.calls.length, 1);

  const rejected = await gw.join('cap', { from: '127.0.9.2', captchaToken: 'not-a-real-token' });
  t.equal(rejected.status, 403);
  t.equal(rejected.body.error, 'captcha_failed');
  t.equal(rejected.body.reason, 'rejected', 'the body says why');

  const replay = await gw.join('cap', { from: '127.0.9.3', captchaToken: token });
  t.equal(replay.status, 403);
  t.equal(replay.body.error, 'captcha_failed', 'a replayed token is refused');
  t.equal(replay.body.reason, 'replayed');
  t.equal(fake.calls.length, 2, 'without asking siteverify (which would have said yes)');

  let stats: Record<string, unknown> = {};
  const counted = await within(2000, async () => {
    stats = (await request(gw.url, 'GET', '/admin/rooms/cap/stats', { headers: { authorization: 'Bearer test-admin' } })).body;
    return stats.captchaFailed === 2;
  });
  t.ok(counted >= 0, 'the failures are counted');
  t.match(stats, { challenged: 1, captchaPassed: 1, captchaFailed: 2, joined: 1 });
  t.equal(stats.challengePassRate, 1 / 3);
});

t.test('siteverify down: fail closed refuses, fail open lets the join through', async (t) => {
  const fake = await startFakeSiteverify({ behaviour: 'hang' });
  t.teardown(() => fake.close());
  const f = fixture(t);
  const env = { HCAPTCHA_VERIFY_URL: fake.url, CAPTCHA_TIMEOUT_MS: '300' };
  const closed = await f.start({ ...env, CAPTCHA_FAIL_MODE: 'closed' });
  const open = await f.start({ ...env, CAPTCHA_FAIL_MODE: 'open' });
  await closed.put('down', openRoom(f.clock.now, ALWAYS));
  const seen = await within(3000, async () => (await request(open.url, 'GET', '/api/rooms/down')).status === 200);
  t.ok(seen >= 0, 'the second process knows the room');

  const c = await closed.join('down', { from: '127.0.10.1', captchaToken: fake.mint() });
  t.equal(c.status, 403);
  t.equal(c.body.error, 'captcha_failed', 'closed: the join is refused');
  t.equal(c.body.reason, 'unavailable', 'the client may solve again');
  const o = await open.join('down', { from: '127.0.10.2', captchaToken: fake.mint() });
  t.equal(o.status, 200, 'open: the join goes through');
  t.equal(o.body.ticket, 1);
  t.notOk(([] as string[]).concat(o.headers['set-cookie'] ?? []).some((x) => x.startsWith('wr_cp_')), 'but no pass is remembered');
  t.equal(fake.calls.length, 2, 'both asked siteverify and gave up after the timeout');

  // unreachable (nothing listening) behaves the same
  await fake.close();
  const c2 = await closed.join('down', { from: '127.0.10.3', captchaToken: 'x-1' });
  t.equal(c2.body.error, 'captcha_failed');
  const o2 = await open.join('down', { from: '127.0.10.4', captchaToken: 'x-2' });
  t.equal(o2.status, 200);
  let stats: Record<string, unknown> = {};
  const counted = await within(2000, async () => {
    stats = (await request(closed.url, 'GET', '/admin/rooms/down/stats', { headers: { authorization: 'Bearer test-admin' } })).body;
    return stats.captchaUnavailable === 4;
  });
  t.ok(counted >= 0, 'stats count the four joins hCaptcha gave no verdict on');
  t.match(stats, { captchaUnavailable: 4, captchaPassed: 0, captchaFailed: 0 });
});
