/**
 * The post-open fairness figure in GET /admin/rooms/:room/stats: Kendall tau and overtakes between
 * arrival order (each gateway's injected clock) and admission order, over joins through two
 * gateways sharing one Redis and prefix.
 */
import t from 'tap';
import { orderFairness } from '../../waiting-room/fairness.js';
import { adminHeaders, gateway, getJson, join, manualClock, OPEN_LIMITS, putRoom, testConfig } from './helpers.js';

const opensAt = Date.parse('2030-01-01T12:00:00.000Z');
const ROOM = { opensAt: new Date(opensAt).toISOString(), admitRatePerMin: 60_000, maxActive: 100_000, ...OPEN_LIMITS };

async function fairness(url: string): Promise<Record<string, unknown>> {
  const r = await getJson(`${url}/admin/rooms/r/stats`, adminHeaders());
  return r.body.fairness as Record<string, unknown>;
}

t.test('in-order arrivals through two gateways: tau 1, no overtakes', async (t) => {
  const clock = manualClock(opensAt + 5000);
  const config = testConfig();
  const a = await gateway(t, config, { clock: clock.now });
  const b = await gateway(t, config, { clock: clock.now });
  await putRoom(a, 'r', ROOM);
  for (let i = 0; i < 12; i++) {
    clock.advance(1);
    t.equal((await join(i % 2 ? b : a, 'r')).status, 200);
  }
  t.same(await fairness(a.url), { prequeue: 0, prequeueAdmitted: 0, meanJoinPercentileOfAdmitted: null, kendallTau: null, overtakes: 0, sample: 0 });
  await a.admitOnce!(); // starts the credit clock
  clock.advance(1000);
  t.equal(await a.admitOnce!(), 12);
  const f = await fairness(b.url);
  t.equal(f.kendallTau, 1);
  t.equal(f.overtakes, 0);
  t.equal(f.sample, 12);
});

t.test('arrival clocks out of step: the exact overtake count, a tie counted as neither', async (t) => {
  const base = opensAt + 1_000_000;
  const ca = manualClock(base);
  const cb = manualClock(base);
  const config = testConfig();
  const a = await gateway(t, config, { clock: ca.now });
  const b = await gateway(t, config, { clock: cb.now });
  await putRoom(a, 'r', ROOM);
  // Tickets in this order, arriving (by each gateway's clock) at these ms after base.
  const plan: ['a' | 'b', number][] = [['a', 10], ['b', 5], ['a', 11], ['b', 3], ['a', 12], ['b', 12], ['b', 1]];
  for (const [gw, at] of plan) {
    (gw === 'a' ? ca : cb).set(base + at);
    const r = await join(gw === 'a' ? a : b, 'r');
    t.equal(r.status, 200);
  }
  await a.admitOnce!();
  ca.advance(1000);
  t.equal(await a.admitOnce!(), 7);
  const f = await fairness(a.url);
  // Inversions of [10, 5, 11, 3, 12, 12, 1]: 3 + 2 + 2 + 1 + 1 + 1 = 10; 21 pairs, 1 tied, 10 concordant.
  t.equal(f.overtakes, 10);
  t.equal(f.kendallTau, 0);
  t.equal(f.sample, 7);
});

t.test('orderFairness matches the pairwise definition (ties included)', async (t) => {
  let seed = 7;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed; };
  for (let round = 0; round < 50; round++) {
    const xs = Array.from({ length: 1 + (rnd() % 60) }, () => rnd() % 20);
    let c = 0, d = 0, ties = 0;
    for (let i = 0; i < xs.length; i++) for (let j = i + 1; j < xs.length; j++) {
      if (xs[i]! < xs[j]!) c++; else if (xs[i]! > xs[j]!) d++; else ties++;
    }
    const pairs = c + d + ties;
    const f = orderFairness(xs);
    t.equal(f.overtakes, d);
    const tau = pairs - ties > 0 ? (c - d) / Math.sqrt((pairs - ties) * pairs) : null;
    if (tau === null) t.equal(f.kendallTau, null);
    else t.ok(Math.abs(f.kendallTau! - tau) < 1e-12, `tau ${f.kendallTau} vs ${tau}`);
  }
});
