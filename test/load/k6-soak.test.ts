/**
 * load-tests/soak.js under a real k6 (skipped, saying so, where there is none): a short soak
 * against the product (own prefix and database) passes; every script refuses to start when a
 * health check does not answer, naming the URL it tried.
 */
import t from 'tap';
import net from 'node:net';
import { startProduct, type Product } from '../../load-tests/replay/product.js';
import { NEEDS_K6, k6Run, metricLine, runK6 } from './k6.js';

/** A port nobody listens on: listen on 0, read it, close. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

t.test('soak.js under a real k6', { skip: NEEDS_K6 }, async (t) => {
  for (const [visitors, duration] of [['100', '20s'], ['20000', '10m']]) {
    const r = await runK6(['inspect', '--execution-requirements'], 'soak.js', { VISITORS: visitors, DURATION: duration }, 60);
    t.equal(r.code, 0, `k6 accepts the options at ${visitors} shoppers over ${duration}`);
  }
  const product: Product = await startProduct();
  t.teardown(() => product.close());

  const ok = await k6Run('soak.js', product, { VISITORS: 40, DURATION: '10s' });
  t.equal(ok.code, 0, `a healthy product passes${ok.code ? `:\n${ok.stdout}\n${ok.stderr.slice(-1500)}` : ''}`);
  t.match(metricLine(ok.stdout, 'shoppers_bought'), /count 4\d\b/, 'every shopper bought (stock lasts)');

  const port = await deadPort();
  for (const script of ['drop-day.js', 'bots.js', 'soak.js']) {
    const down = await k6Run(script, { ...product, gateway: `http://127.0.0.1:${port}` }, { VISITORS: 10, DURATION: '10s' }, 60);
    t.equal(down.code, 108, `${script}: aborted before any load when the gateway does not answer`);
    t.match(down.stderr, new RegExp(`health check http://127\\.0\\.0\\.1:${port}/healthz did not answer`), `${script}: names the URL it tried`);
    t.match(down.stdout, /NOT RUN/, `${script}: the summary says nothing ran`);
    t.notMatch(down.stdout, /PASSED/);
  }
  const co = await k6Run('soak.js', { ...product, checkout: `http://127.0.0.1:${port}` }, { VISITORS: 10, DURATION: '10s' }, 60);
  t.match(co.stderr, new RegExp(`health check http://127\\.0\\.0\\.1:${port}/healthz did not answer .*CHECKOUT_URL`), 'and the checkout URL when checkout is down');
  t.equal(co.code, 108);
});
