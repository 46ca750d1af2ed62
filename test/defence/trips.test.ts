/**
 * What the defences cost a join in Redis: a join that passes them makes one trip (the join
 * script), the defence itself none; only a join that brings a CAPTCHA token asks Redis more, and
 * what that buys is checked from outside (the pass counted, the token not accepted twice).
 * Commands are counted on the real clients as they are sent.
 */
import t from 'tap';
import type { Redis } from 'ioredis';
import { startFakeSiteverify } from '../../waiting-room/defence/fake-siteverify.js';
import { scripts } from '../../shared/scripts.js';
import { fixture, openRoom, request } from './fixture.js';

function countCommands(redis: Redis): string[] {
  const sent: string[] = [];
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = ((cmd: { name: string; args: unknown[] }, ...rest: unknown[]) => {
    sent.push(cmd.name === 'evalsha' || cmd.name === 'eval' ? `${cmd.name}:${String(cmd.args[0])}` : cmd.name);
    return (send as (...a: unknown[]) => unknown)(cmd, ...rest);
  }) as typeof redis.sendCommand;
  return sent;
}

t.test('a passing join: one join-script call, no command from the defence', async (t) => {
  const fake = await startFakeSiteverify({ allowReuse: true });
  t.teardown(() => fake.close());
  const f = fixture(t);
  const gw = await f.start({ HCAPTCHA_VERIFY_URL: fake.url }, {}, { admitter: false });
  await gw.put('trips', openRoom(f.clock.now, { allow: ['192.0.2.0/24'], block: ['198.51.100.0/24'], trustedProxies: ['10.0.0.0/8'] }));
  const byDefence = countCommands(gw.defenceRedis);
  const byGateway = countCommands(gw.redis);
  for (let i = 0; i < 20; i++) t.equal((await gw.join('trips', { from: `127.0.16.${i + 1}` })).status, 200);
  t.same(byDefence, [], 'the defence sent nothing for 20 passing joins');
  t.equal(byGateway.filter((c) => c === `evalsha:${scripts().joinBatch.sha}`).length, 20, 'one join-script call per join (joins one after another)');

  await gw.put('trips', { captcha: { mode: 'always', threshold: 50 } });
  byDefence.length = 0;
  const challenged = await gw.join('trips', { from: '127.0.16.100' });
  t.equal(challenged.body.error, 'captcha_required');
  t.same(byDefence, [], 'a challenge is decided in the join script: still nothing from the defence');
  const token = fake.mint();
  t.equal((await gw.join('trips', { from: '127.0.16.100', captchaToken: token })).status, 200);
  t.ok(byDefence.length > 0, `a join with a token asks Redis more (${byDefence.length} commands)`);
  // What those commands are for, seen from outside: the pass is counted, and the token is marked
  // used (siteverify here accepts it every time, so only the gateway's own record refuses it).
  const stats = await request(gw.url, 'GET', '/admin/rooms/trips/stats', { headers: { authorization: 'Bearer test-admin' } });
  t.match(stats.body, { captchaPassed: 1, captchaFailed: 0 }, 'the pass is counted');
  t.match((await gw.join('trips', { from: '127.0.16.101', captchaToken: token })).body, { error: 'captcha_failed' }, 'the token is marked used: a replay from elsewhere is refused');
});
