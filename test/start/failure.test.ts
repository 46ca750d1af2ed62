/**
 * When `npm start` cannot start something, it says why (the error and its code, a child server's
 * own last words and where its log is), never `undefined`; and a start that gives up stops what it
 * had started instead of leaving it running. Real processes on this test's own ports and folder.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { redisAnswers } from '../../shared/redis.js';
import { place, printed, start, started } from './harness.js';

t.test('the embedded PostgreSQL cannot start: its own error is printed, and the waiting room runs without checkout', async (t) => {
  const p = await place(t);
  // A cluster the embedded PostgreSQL refuses to open (not initialised by it, not its user's).
  mkdirSync(path.join(p.dataDir, 'postgres'), { recursive: true });
  writeFileSync(path.join(p.dataDir, 'postgres', 'PG_VERSION'), '9\n');
  writeFileSync(path.join(p.dataDir, 'postgres', 'postgresql.conf'), '');
  const run = start(p);
  const { gateway, sale } = await started(run);
  const line = /checkout did not start.*/.exec(run.output())?.[0] ?? '';
  t.match(line, /embedded PostgreSQL did not start/, 'it says the embedded PostgreSQL did not start');
  t.notMatch(line, /undefined/, 'not "undefined"');
  t.match(run.output(), /FATAL/, "with PostgreSQL's own message");
  t.match(run.output(), new RegExp(`whole log: ${path.join(p.dataDir, 'postgres.log')}`), 'and where its log is');
  t.equal(sale, null, 'no checkout URL is printed');
  t.equal((await fetch(`${gateway}/healthz`)).status, 200, 'the waiting room runs');
  process.kill(run.pid, 'SIGINT');
  await run.ended;
  t.notOk(await redisAnswers(p.redisUrl, 200), 'Ctrl-C stopped the redis-server it started');
});

t.test('the gateway port is taken: the cause is printed, the run ends, and the redis-server it started is stopped', async (t) => {
  const p = await place(t);
  const squatter = net.createServer();
  await new Promise<void>((r) => squatter.listen(p.gatewayPort, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => squatter.close(r)));
  const run = start(p);
  const { code } = await run.ended;
  t.equal(code, 1, 'it ends with exit code 1');
  t.match(run.output(), new RegExp(`127\\.0\\.0\\.1:${p.gatewayPort}`), 'naming the address it could not listen on');
  t.match(run.output(), /started redis-server/, 'it had started a redis-server');
  t.notOk(await redisAnswers(p.redisUrl, 200), 'which is stopped');
});

t.test("the Redis port is taken by something else: redis-server's own error is printed", async (t) => {
  const p = await place(t);
  const squatter = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => squatter.listen(Number(new URL(p.redisUrl).port), '127.0.0.1', r));
  t.teardown(() => new Promise((r) => squatter.close(r)));
  const run = start(p);
  await printed(run, /redis-server/);
  const { code } = await run.ended;
  t.equal(code, 1, 'it ends with exit code 1');
  t.match(run.output(), /redis-server on port \d+ ended before it answered \(exit code 1\)/, 'it says redis-server ended, and how');
  t.match(run.output(), /Address already in use/, "with redis-server's own message");
  t.notMatch(run.output(), /undefined/, 'not "undefined"');
});
