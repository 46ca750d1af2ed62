/**
 * The real `npm start` runs npm → sh → tsx → node. A `kill -9` of npm (what a user finds with
 * `ps` as "npm start") must not leave node serving on the ports with its PostgreSQL and Redis: the
 * run notices its launcher is gone and stops everything, and the next `npm start` comes back.
 */
import t from 'tap';
import { answers } from '../../checkout/postgres.js';
import { redisAnswers } from '../../shared/redis.js';
import { eventually, place, productAnswers, start, started } from './harness.js';

t.test('npm itself killed with SIGKILL: the run stops what it started, and the next start comes back', async (t) => {
  const p = await place(t);
  const first = start(p, {}, true);
  const { gateway } = await started(first);
  process.kill(first.pid, 'SIGKILL'); // npm only
  await first.ended;
  // npm's children write on into the same pipe after npm is gone.
  t.ok(await eventually(() => /is gone; stopping everything/.test(first.output()), 20_000), 'the run says its launcher is gone');
  t.ok(await eventually(async () => !(await fetch(`${gateway}/healthz`).then(() => true, () => false)), 20_000), 'the gateway stopped listening');
  t.ok(await eventually(async () => !(await answers(`postgres://postgres:postgres@127.0.0.1:${p.pgPort}/postgres`)), 20_000), 'the embedded PostgreSQL stopped');
  t.ok(await eventually(async () => !(await redisAnswers(p.redisUrl, 200)), 20_000), 'the redis-server stopped');
  await productAnswers(t, start(p));
});
