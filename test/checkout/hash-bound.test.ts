/**
 * Password hashing is bounded per process (PASSWORD_HASH_CONCURRENCY): a burst of sign-ups and
 * log-ins queues for scrypt instead of taking every core, so the rest of checkout keeps
 * answering. Real concurrency: 12 sign-ups and 12 log-ins sent at once against a real checkout
 * with the bound at 2; the number of hashes running, sampled on every turn of the event loop,
 * never passes 2, some wait their turn, and every request gets its answer.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { setImmediate as turn } from 'node:timers/promises';
import { hashingLoad } from '../../checkout/accounts.js';
import { loadConfig } from '../../shared/config.js';
import { call, world } from './helpers.js';

t.test('config: PASSWORD_HASH_CONCURRENCY', async (t) => {
  t.equal(loadConfig({ PASSWORD_HASH_CONCURRENCY: '3' }).passwordHashConcurrency, 3);
  t.ok(loadConfig({}).passwordHashConcurrency >= 1, 'the default is at least one');
  t.throws(() => loadConfig({ PASSWORD_HASH_CONCURRENCY: '0' }), /PASSWORD_HASH_CONCURRENCY/);
});

t.test('a burst of sign-ups and log-ins runs at most PASSWORD_HASH_CONCURRENCY hashes at once', async (t) => {
  const w = await world(t, 'hashbound', {}, { PASSWORD_HASH_CONCURRENCY: '2' });
  const emails = Array.from({ length: 12 }, (_, i) => `burst-${i}-${randomUUID().slice(0, 6)}@example.com`);
  let most = 0;
  let queued = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const { active, pending } = hashingLoad();
      most = Math.max(most, active);
      queued = Math.max(queued, pending);
      await turn();
    }
  })();
  const ups = await Promise.all(emails.map((email) => call(w.url, 'POST', '/api/users', { body: { email, password: 'correct horse battery' } })));
  const ins = await Promise.all(emails.map((email, i) => call(w.url, 'POST', '/api/sessions', { body: { email, password: i % 2 ? 'correct horse battery' : 'wrong horse battery' } })));
  sampling = false;
  await sampler;
  t.same(ups.map((r) => r.status), emails.map(() => 201), 'every sign-up answered 201');
  t.same(ins.map((r) => r.status), emails.map((_, i) => (i % 2 ? 200 : 401)), 'every log-in answered: right password 200, wrong 401');
  t.equal(most, 2, 'two hashes ran at once, never more');
  t.ok(queued >= 8, `the others waited their turn (most waiting at once: ${queued})`);
});
