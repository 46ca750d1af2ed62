/**
 * load-tests/drop-day.js under a real k6 (skipped, saying so, where there is none): k6 accepts
 * its options from 100 to 50,000 visitors; a tiny drop against the product (own prefix and
 * database) passes every threshold; the same drop into a room whose admitter never lets
 * anyone in fails, on shoppers left without an answer.
 */
import t from 'tap';
import { startProduct, type Product } from '../../load-tests/replay/product.js';
import { NEEDS_K6, k6Run, metricLine, runK6 } from './k6.js';

t.test('drop-day.js under a real k6', { skip: NEEDS_K6 }, async (t) => {
  for (const [visitors, duration] of [['100', '20s'], ['300', '20s'], ['1000', '30s'], ['20000', '10m'], ['50000', '10m']]) {
    const r = await runK6(['inspect', '--execution-requirements'], 'drop-day.js', { VISITORS: visitors, DURATION: duration }, 60);
    t.equal(r.code, 0, `k6 accepts the options at ${visitors} visitors over ${duration}${r.code ? `: ${r.stderr.slice(-300)}` : ''}`);
  }

  const product: Product = await startProduct();
  t.teardown(() => product.close());

  const ok = await k6Run('drop-day.js', product, { VISITORS: 30, STOCK: 5, DURATION: '20s' });
  t.equal(ok.code, 0, `a healthy product passes${ok.code ? `:\n${ok.stdout}\n${ok.stderr.slice(-1500)}` : ''}`);
  t.match(metricLine(ok.stdout, 'purchases'), /count 5\b/, 'every unit sold');
  t.match(metricLine(ok.stdout, 'shopper_failed'), /rate 0 .*PASS rate==0/, 'every shopper got a final answer');
  t.match(ok.stdout, /PASSED: every threshold held/);

  const stuck = await k6Run('drop-day.js', product, { VISITORS: 20, STOCK: 5, DURATION: '20s', ADMIT_RATE: 0, MAX_WAIT_SECONDS: 5 });
  t.equal(stuck.code, 99, 'a room that admits no one fails its thresholds (exit 99)');
  t.match(metricLine(stuck.stdout, 'shopper_failed'), /FAIL rate==0/, 'on shoppers left waiting');
  t.match(stuck.stderr, /got no final answer: timeout/, 'and says how they were left');
});
