/**
 * What the fuzzer (test/fuzz/*.test.ts) found, each pinned by a focused test that failed before
 * its fix.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { call, createSale, world } from '../checkout/helpers.js';
import { hs256 as session } from './fuzz.js';

t.test('a validly signed session whose subject is not a user id is 401 unauthenticated, not a 500', async (t) => {
  const w = await world(t, 'found');
  await createSale(w.url, 's');
  const exp = Math.floor(Date.now() / 1000) + 3600;
  for (const sub of ['not-a-uuid', ' ', 'a\u0000b', `${randomUUID()}x`]) {
    const token = session({ sub, iss: 'checkout', aud: 'checkout-session', exp });
    const answers = [
      await call(w.url, 'GET', '/api/sales/s/purchase', { token }),
      await call(w.url, 'POST', '/api/sales/s/reservations', { token, headers: { 'x-admission-token': await w.keys.sign({ sale: 's' }) } }),
      await call(w.url, 'POST', `/api/reservations/${randomUUID()}/payment`, { token, body: { method: 'test_ok' } }),
      await call(w.url, 'DELETE', `/api/reservations/${randomUUID()}`, { token }),
    ];
    t.same(answers.map((a) => [a.status, a.body.error]), Array(4).fill([401, 'unauthenticated']), `sub ${JSON.stringify(sub)}`);
  }
  const ghost = session({ sub: randomUUID(), iss: 'checkout', aud: 'checkout-session', exp });
  const r = await call(w.url, 'POST', '/api/sales/s/reservations', { token: ghost, headers: { 'x-admission-token': await w.keys.sign({ sale: 's' }) } });
  t.same([r.status, r.body.error], [401, 'unauthenticated'], 'a user id of no account');
});
