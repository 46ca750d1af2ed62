/**
 * Two `npm start`s on one data folder at once (other ports): the second finds the embedded
 * PostgreSQL of the first, which still runs, and uses it instead of stopping it or starting a
 * second server on the same cluster; stopping the second leaves the first whole.
 */
import t from 'tap';
import { freePort } from '../../shared/ports.js';
import { place, postmasterPid, productAnswers, running, start, started, type Place } from './harness.js';

t.test('a second npm start on the same data folder while the first runs: it shares the embedded PostgreSQL, and stopping it leaves the first whole', async (t) => {
  const p: Place = await place(t);
  const first = start(p);
  await productAnswers(t, first);
  const pm = postmasterPid(p.dataDir)!;
  const second = start(p, { GATEWAY_PORT: String(await freePort()), CHECKOUT_PORT: String(await freePort()) });
  const { sale } = await started(second);
  t.ok(sale, 'the second run has its checkout');
  t.equal(postmasterPid(p.dataDir), pm, 'on the same PostgreSQL');
  t.equal((await fetch(`${new URL(sale!).origin}/healthz`)).status, 200, "the second run's checkout /healthz 200");
  process.kill(second.pid, 'SIGINT');
  await second.ended;
  t.ok(running(pm), 'stopping the second run left the PostgreSQL running');
  const { sale: firstSale } = await started(first);
  t.equal((await fetch(`${new URL(firstSale!).origin}/healthz`)).status, 200, "the first run's checkout /healthz still 200");
});
