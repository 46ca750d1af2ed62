/**
 * The suspicion score in `suspicious` mode (threshold 50, default buckets): header oddities from
 * Node plus velocity from the join script (IP and subnet bucket depletion, visitor ids per IP,
 * failed CAPTCHAs), and the failed-CAPTCHA window that blocks an IP.
 */
import t from 'tap';
import { startFakeSiteverify } from '../../waiting-room/defence/fake-siteverify.js';
import { fixture, openRoom, request, within, BROWSER } from './fixture.js';

const CURL = { 'user-agent': 'curl/8.5.0', accept: '*/*' };

t.test('more visitor ids from one IP than a household has: challenged, and a solved CAPTCHA lets in', async (t) => {
  const fake = await startFakeSiteverify();
  t.teardown(() => fake.close());
  const f = fixture(t);
  const gw = await f.start({ HCAPTCHA_VERIFY_URL: fake.url });
  await gw.put('home', openRoom(f.clock.now));
  // join k from one IP scores 30k/10 (IP bucket) + 20k/200 (subnet) + 10 per visitor id past 4:
  // 3.1, 6.2, 9.3, 12.4, 25.5, 38.6, then 51.7 >= 50
  const outcomes: string[] = [];
  for (let k = 1; k <= 7; k++) {
    const a = await gw.join('home', { from: '127.0.12.1' });
    outcomes.push(a.status === 200 ? 'joined' : String(a.body.error));
  }
  t.same(outcomes, ['joined', 'joined', 'joined', 'joined', 'joined', 'joined', 'captcha_required']);
  const solved = await gw.join('home', { from: '127.0.12.1', captchaToken: fake.mint() });
  t.equal(solved.status, 200, 'a passed CAPTCHA skips the score');
  t.equal(solved.body.ticket, 7);
  t.equal((await gw.join('home', { from: '127.0.12.2' })).status, 200, 'the neighbour IP has its own count');
});

t.test('a failed CAPTCHA raises the IP\'s score; too many block it', async (t) => {
  const fake = await startFakeSiteverify();
  t.teardown(() => fake.close());
  const f = fixture(t);
  const gw = await f.start({ HCAPTCHA_VERIFY_URL: fake.url }, { failures: { maxFailures: 2, windowSeconds: 600, blockSeconds: 900 } });
  await gw.put('cf', openRoom(f.clock.now));

  t.equal((await gw.join('cf', { from: '127.0.13.1', headers: CURL })).status, 200, 'curl scores 45 + 3.1: under 50');
  t.equal((await gw.join('cf', { from: '127.0.14.1', headers: CURL, captchaToken: 'bogus-1' })).body.error, 'captcha_failed');
  const after = await gw.join('cf', { from: '127.0.14.1', headers: CURL });
  t.equal(after.status, 403);
  t.equal(after.body.error, 'captcha_required', 'one failed CAPTCHA adds 15: 63.1');
  t.equal((await gw.join('cf', { from: '127.0.14.1', headers: BROWSER })).status, 200, 'a browser from the same IP still passes');

  t.equal((await gw.join('cf', { from: '127.0.14.1', captchaToken: 'bogus-2' })).body.error, 'captcha_failed');
  t.equal((await gw.join('cf', { from: '127.0.14.1', captchaToken: 'bogus-3' })).body.error, 'captcha_failed', 'the third failure tips the window');
  const calls = fake.calls.length;
  const blocked = await gw.join('cf', { from: '127.0.14.1', headers: BROWSER });
  t.equal(blocked.status, 403);
  t.equal(blocked.body.error, 'blocked');
  t.equal((await gw.join('cf', { from: '127.0.14.1', captchaToken: fake.mint() })).body.error, 'blocked', 'even with a good token');
  t.equal(fake.calls.length, calls, 'a blocked IP costs no siteverify call');
  t.equal((await gw.join('cf', { from: '127.0.14.2', headers: BROWSER })).status, 200, 'another IP is not blocked');
  const counted = await within(2000, async () => {
    const s = (await request(gw.url, 'GET', '/admin/rooms/cf/stats', { headers: { authorization: 'Bearer test-admin' } })).body;
    return s.blocked === 2 && s.captchaFailed === 3 && s.challenged === 1;
  });
  t.ok(counted >= 0, 'stats: 2 blocked, 3 failed, 1 challenged');
});
