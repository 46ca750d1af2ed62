/**
 * A threshold changed through one gateway process applies on a second process (same Redis,
 * nothing else shared) within 2 s.
 */
import t from 'tap';
import { fixture, openRoom, request, within } from './fixture.js';

t.test('a CAPTCHA threshold changed on one process applies on another within 2 s', async (t) => {
  const f = fixture(t);
  const a = await f.start();
  const b = await f.start();
  // no user-agent, accept or accept-language: header score 65, plus a little velocity
  const bare = { 'content-type': 'application/json' };
  let n = 0;
  const joinOnB = () => b.join('live', { from: `127.0.${11 + Math.floor(n / 250)}.${(n++ % 250) + 1}`, headers: bare });

  t.equal((await a.put('live', openRoom(f.clock.now, { captcha: { mode: 'suspicious', threshold: 90 } }))).status, 201);
  t.ok(await within(3000, async () => (await request(b.url, 'GET', '/api/rooms/live')).status === 200) >= 0, 'B knows the room');
  const before = await joinOnB();
  t.equal(before.status, 200, 'under threshold 90 the bare client joins');

  const put = await a.put('live', { captcha: { mode: 'suspicious', threshold: 60 } });
  t.equal(put.status, 200);
  const took = await within(2000, async () => (await joinOnB()).body.error === 'captcha_required');
  t.ok(took >= 0, `process B challenges within 2 s of the PUT on A (took ${took} ms)`);
  const after = await joinOnB();
  t.equal(after.status, 403);
  t.equal(after.body.error, 'captcha_required');
  t.equal(after.body.siteKey, b.config.hcaptchaSitekey);
});
