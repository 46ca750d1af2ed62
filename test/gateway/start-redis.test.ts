/** npm start's Redis step: start a redis-server for the run when none answers, or say how to get one. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { redisAnswers } from '../../shared/redis.js';
import { ensureRedis, NoRedisError } from '../../scripts/redis.js';
import { freePort } from '../../shared/ports.js';

t.test('no Redis at the URL: one is started for the run, with its data under the data folder, and stopped', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wr-redis-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const url = `redis://127.0.0.1:${await freePort()}`;
  t.equal(await redisAnswers(url), false);
  const lines: string[] = [];
  const h = await ensureRedis(url, dir, (l) => lines.push(l));
  t.teardown(() => h.stop());
  t.equal(h.started, true);
  t.equal(await redisAnswers(url), true, 'Redis answers at the URL');
  t.match(lines.join('\n'), /started redis-server .* data in .*redis/, 'and it says so');
  await h.stop();
  t.equal(await redisAnswers(url), false, 'stopped with the run');
});

t.test('a Redis already answering is used as is', async (t) => {
  const h = await ensureRedis('redis://127.0.0.1:6379', os.tmpdir(), () => {});
  t.equal(h.started, false);
});

t.test('no Redis and no redis-server binary: a message that says how to get one', async (t) => {
  const url = `redis://127.0.0.1:${await freePort()}`;
  const err = await ensureRedis(url, os.tmpdir(), () => {}, 'redis-server-not-installed-here').then(() => null, (e: unknown) => e);
  t.ok(err instanceof NoRedisError, 'refused with NoRedisError');
  t.match((err as Error).message, /apt-get install redis-server.*REDIS_URL/s, 'saying how to get one');
});
