/**
 * load-tests/bots.js under a real k6 (skipped, saying so, where there is none): against the
 * product (own prefix and database) every bot kind is stopped as the room's settings promise
 * and no human is refused; with the load generator not trusted as a proxy (every client then
 * looks like one address, as behind an untrusted balancer) humans are refused and it fails.
 */
import t from 'tap';
import { startProduct, type Product } from '../../load-tests/replay/product.js';
import { NEEDS_K6, k6Run, metricLine, runK6 } from './k6.js';

t.test('bots.js under a real k6', { skip: NEEDS_K6 }, async (t) => {
  for (const [visitors, duration] of [['100', '20s'], ['20000', '10m']]) {
    const r = await runK6(['inspect', '--execution-requirements'], 'bots.js', { VISITORS: visitors, DURATION: duration }, 60);
    t.equal(r.code, 0, `k6 accepts the options at ${visitors} clients over ${duration}${r.code ? `: ${r.stderr.slice(-300)}` : ''}`);
  }

  const product: Product = await startProduct();
  t.teardown(() => product.close());

  const ok = await k6Run('bots.js', product, { VISITORS: 60, DURATION: '10s' });
  t.equal(ok.code, 0, `a healthy product passes${ok.code ? `:\n${ok.stdout}\n${ok.stderr.slice(-1500)}` : ''}`);
  for (const kind of ['hammer', 'subnet', 'nocookie']) {
    t.match(metricLine(ok.stdout, `bot_stopped{kind:${kind}}`), /rate 1 .*PASS rate==1/, `${kind}: every join challenged, as CAPTCHA "suspicious" at 50 promises`);
  }
  t.match(metricLine(ok.stdout, 'human_refused'), /rate 0 .*PASS/, 'no shopper refused');

  const untrusted = await k6Run('bots.js', product, { VISITORS: 60, DURATION: '10s', TRUSTED_PROXY: '10.9.9.9/32' });
  t.equal(untrusted.code, 99, 'a room that does not trust the load generator fails (exit 99)');
  t.match(metricLine(untrusted.stdout, 'human_refused'), /FAIL/, 'shoppers behind one address are refused');
});
