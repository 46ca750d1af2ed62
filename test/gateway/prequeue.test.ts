/**
 * Pre-queue fairness: everyone who joined before opensAt is drawn into a uniformly random order
 * at open, ahead of everyone who joins after (in arrival order). There is no drain step: the
 * order is fixed by the draw keys HMAC-SHA256(room seed, entrantId) computed at join (the seed is
 * committed before anyone joins: test/gateway/draw.test.ts) and frozen at open; admission walks it
 * in bounded calls. The statistics below are over those HMAC keys.
 *
 * Statistical tests (n = 5,000 pre-queue joiners, join order = the order the joins were sent):
 *  - Spearman's rank correlation between join order and drawn ticket. Under a uniform random
 *    permutation rho has mean 0 and sd 1/sqrt(n-1) = 0.0141; we require |rho| < 0.06 (~4.2 sd,
 *    a false alarm about 1 run in 40,000). A FIFO order would give rho = 1.
 *  - Chi-square of join-order quintile x ticket quintile (5x5 table, 200 expected per cell,
 *    16 degrees of freedom): we require chi2 < 39.25, the critical value at p = 0.001.
 */
import t from 'tap';
import { MAX_ADMIT_PER_CALL } from '../../waiting-room/admitter.js';
import { gateway, getJson, inWaves, join, manualClock, OPEN_LIMITS, putRoom, testConfig } from './helpers.js';

const N = 5000;

function spearman(x: number[], y: number[]): number {
  const n = x.length;
  let d2 = 0;
  for (let i = 0; i < n; i++) d2 += (x[i]! - y[i]!) ** 2;
  return 1 - (6 * d2) / (n * (n * n - 1));
}

t.test('a pre-queue of 5,000 is drawn in a random order at open, ahead of later joiners in arrival order', async (t) => {
  const opensAt = Date.parse('2030-01-01T12:00:00.000Z');
  const clock = manualClock(opensAt - 60_000);
  const config = testConfig();
  const gw = await gateway(t, config, { clock: clock.now });
  await putRoom(gw, 'drop', { opensAt: new Date(opensAt).toISOString(), prequeueSeconds: 300, ...OPEN_LIMITS });

  // Before the pre-queue window: refused with the times to come back.
  clock.set(opensAt - 400_000);
  const early = await join(gw, 'drop');
  t.equal(early.status, 409);
  t.same(early.body, { error: 'not_open', message: early.body.message, opensAt: '2030-01-01T12:00:00.000Z', prequeueOpensAt: '2030-01-01T11:55:00.000Z' });
  clock.set(opensAt - 60_000);

  // 5,000 pre-queue joins, sent in waves of 250 concurrent requests.
  const order: string[] = [];
  const odd: unknown[] = [];
  for (let w = 0; w < N / 250; w++) {
    const wave = await Promise.all(Array.from({ length: 250 }, () => join(gw, 'drop')));
    for (const r of wave) {
      if (!(r.status === 200 && r.body.ticket === null && r.body.position === null && r.body.state === 'prequeue')) odd.push(r.body);
      order.push(r.visitorId);
    }
  }
  t.same(odd, [], 'every pre-queue join answered 200 with ticket and position null, state prequeue');
  t.equal(new Set(order).size, N);
  const again = await join(gw, 'drop', order[17]);
  t.same([again.body.ticket, again.body.position], [null, null], 'a repeat join in the pre-queue keeps its (undrawn) place');

  // Open. The first post-open joiners are behind all 5,000, in arrival order.
  clock.set(opensAt + 1);
  const post: string[] = [];
  const postTickets: unknown[] = [];
  for (let i = 0; i < 20; i++) {
    const r = await join(gw, 'drop');
    postTickets.push(r.body.ticket);
    post.push(r.visitorId);
  }
  t.same(postTickets, Array.from({ length: 20 }, (_, i) => N + 1 + i), 'post-open joiners get tickets 5,001.. in arrival order');

  const me = async (vid: string) => (await getJson(`${gw.url}/api/rooms/drop/me`, { 'x-visitor-id': vid })).body as { ticket: number; admitted: boolean; position: number };
  const tickets = (await inWaves(order, 250, me)).map((m) => m.ticket);
  t.same([...tickets].sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i + 1), 'pre-queue tickets are a permutation of 1..5,000');
  const rejoin = await join(gw, 'drop', order[17]);
  t.equal(rejoin.body.ticket, tickets[17], 'a pre-queue visitor joining again after open gets its drawn ticket');

  // Admission walks the drawn order in bounded calls: after 2,500, exactly tickets 1..2,500 are in.
  await putRoom(gw, 'drop', { admitRatePerMin: 60_000, maxActive: 1_000_000 });
  await gw.admitOnce!();
  let admitted = 0;
  let largest = 0;
  while (admitted < N / 2) {
    clock.advance(250); // 250 credits at 60,000/min
    const n = await gw.admitOnce!();
    largest = Math.max(largest, n);
    admitted += n;
  }
  t.equal(admitted, N / 2);
  t.ok(largest <= 1000, `no admission round over one second's worth (largest ${largest}; calls of at most ${MAX_ADMIT_PER_CALL})`);
  const after = await inWaves(order, 250, me);
  t.same(after.filter((m) => m.admitted).map((m) => m.ticket).sort((a, b) => a - b), Array.from({ length: N / 2 }, (_, i) => i + 1), 'admitted in drawn-ticket order');
  t.ok(after.every((m) => m.admitted ? m.position === 0 : m.position === m.ticket - N / 2), 'positions = ticket - admittedThrough');

  const rho = spearman(order.map((_, i) => i + 1), tickets);
  t.ok(Math.abs(rho) < 0.06, `Spearman rho between join order and ticket = ${rho.toFixed(4)} (|rho| < 0.06)`);

  const cells = Array.from({ length: 5 }, () => new Array<number>(5).fill(0));
  tickets.forEach((ticket, i) => { cells[Math.floor((i * 5) / N)]![Math.floor(((ticket - 1) * 5) / N)]!++; });
  const chi2 = cells.flat().reduce((s, o) => s + (o - N / 25) ** 2 / (N / 25), 0);
  t.ok(chi2 < 39.25, `chi-square of join quintile x ticket quintile = ${chi2.toFixed(2)} (< 39.25, p > 0.001 at 16 df)`);

  const late = (await Promise.all(post.map(me))).map((m) => m.ticket);
  t.same(late, Array.from({ length: 20 }, (_, i) => N + 1 + i), 'post-open joiners keep their arrival order behind the pre-queue');
  const next = await join(gw, 'drop');
  t.equal(next.body.ticket, N + 21);

  const stats = await getJson(`${gw.url}/admin/rooms/drop/stats`, { authorization: 'Bearer test-admin-token' });
  const fairness = stats.body.fairness as { prequeue: number; prequeueAdmitted: number; meanJoinPercentileOfAdmitted: number };
  t.same([fairness.prequeue, fairness.prequeueAdmitted], [N, N / 2], 'the stats report the pre-queue and how many of it are in');
  // 2,500 drawn from 5,000 without replacement: the mean percentile has sd ~ 0.289 / sqrt(2500) * sqrt(1/2) = 0.0041.
  t.ok(Math.abs(fairness.meanJoinPercentileOfAdmitted - 0.5) < 0.025, `fairness figure ${fairness.meanJoinPercentileOfAdmitted.toFixed(4)} ~ 0.5 (joining early bought nothing)`);
});
