/**
 * A threshold changed through one gateway process applies on a second process (its own OS
 * process, same Redis prefix, nothing else shared) within 2 s.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { fixture, openRoom, request, within, type Answer } from './fixture.js';

const CHILD = fileURLToPath(new URL('./gateway-child.ts', import.meta.url));

async function startChild(t: Test, env: Record<string, string>): Promise<string> {
  const child = spawn(process.execPath, ['--import=tsx', CHILD, JSON.stringify(env)], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(async () => {
    if (child.exitCode !== null) return;
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await once(child, 'exit');
    clearTimeout(timer);
  });
  let out = '';
  for await (const chunk of child.stdout) {
    out += String(chunk);
    if (out.includes('\n')) break;
  }
  return (JSON.parse(out.split('\n')[0]!) as { url: string }).url;
}

t.test('a CAPTCHA threshold changed on one process applies on another within 2 s', async (t) => {
  const f = fixture(t);
  f.clock.now = Date.now(); // the second process runs on the real clock
  const a = await f.start();
  const bUrl = await startChild(t, { REDIS_PREFIX: f.prefix, ADMIN_TOKEN: 'test-admin', LOG_LEVEL: 'warn' });
  // no user-agent, accept or accept-language: header score 65, plus a little velocity
  let n = 0;
  const joinOnB = (): Promise<Answer> => request(bUrl, 'POST', '/api/rooms/live/join', {
    body: {}, localAddress: `127.0.${11 + Math.floor(n / 250)}.${(n++ % 250) + 1}`,
  });

  t.equal((await a.put('live', openRoom(f.clock.now, { captcha: { mode: 'suspicious', threshold: 90 } }))).status, 201);
  t.ok(await within(3000, async () => (await request(bUrl, 'GET', '/api/rooms/live')).status === 200) >= 0, 'B knows the room');
  const before = await joinOnB();
  t.equal(before.status, 200, 'under threshold 90 the bare client joins');

  const put = await a.put('live', { captcha: { mode: 'suspicious', threshold: 60 } });
  t.equal(put.status, 200);
  const took = await within(2000, async () => (await joinOnB()).body.error === 'captcha_required');
  t.ok(took >= 0, `process B challenges within 2 s of the PUT on A (took ${took} ms)`);
  const after = await joinOnB();
  t.equal(after.status, 403);
  t.equal(after.body.error, 'captcha_required');
  t.equal(after.body.siteKey, a.config.hcaptchaSitekey);
});
