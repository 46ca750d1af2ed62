/**
 * What the k6 scripts ask k6 for, checked in Node: load-tests/lib/plan.js has no k6 module, so
 * its scenarios and the bots' promise are plain values. k6's own reading of the same options
 * (and the scripts run for real) is in k6-drop-day/bots/soak.test.ts.
 */
import t from 'tap';
import { headerScore } from '../../waiting-room/defence/score.js';
import {
  botsPlan, botThresholds, BOT_HEADERS, BOT_HEADER_SCORES, DEFAULT_LIMITS, dropDayPlan, durationSeconds, HUMAN_HEADERS,
  arrivalTimes, loadEnv, soakPlan,
} from '../../load-tests/lib/plan.js';

const SIZES = [['100', '20s'], ['300', '20s'], ['1000', '2m'], ['20000', '10m'], ['50000', '10m']] as const;
const env = (E: Record<string, string>, d = { visitors: 1000, stock: 100, duration: '2m' }) => loadEnv(E, d);

t.test('drop-day: pre-queue then spike, about VISITORS shoppers, carried by a few VUs', async (t) => {
  for (const [visitors, duration] of SIZES) {
    const p = dropDayPlan(env({ VISITORS: visitors, DURATION: duration }), 0.3, 60);
    const s = p.scenarios.shoppers;
    const total = p.arrivals.at.length;
    t.ok(s.vus >= 1 && s.vus <= 200 && s.iterations === s.vus, `${visitors}/${duration}: ${s.vus} VUs, one iteration each`);
    t.ok(Math.abs(total - Number(visitors)) / Number(visitors) < 0.15, `${visitors} over ${duration}: ${total} shoppers`);
    t.ok(p.prequeue / total > 0.2 && p.prequeue / total < 0.4, `about 30% in the pre-queue (${Math.round((100 * p.prequeue) / total)}%)`);
    t.ok(p.arrivals.at.slice(0, p.prequeue).every((ms) => ms <= p.prequeueSec * 1000), 'the pre-queue arrives before open');
    t.ok(p.arrivals.at.slice(p.prequeue).every((ms) => ms >= p.prequeueSec * 1000), 'the spike after');
    t.ok(p.arrivals.at.every((ms, i, a) => i === 0 || i === p.prequeue || ms >= a[i - 1]!), 'each part in time order');
    t.equal(new Set(p.arrivals.n).size, total, 'every shopper its own number');
    t.ok(durationSeconds(s.maxDuration) >= durationSeconds(duration) + 60, 'room for the last wait');
  }
});

t.test('arrivalTimes: as many arrivals as the rate integrates to, where they fall', async (t) => {
  t.same(arrivalTimes(0, 2, [{ target: 2, duration: '2s' }]), [250, 750, 1250, 1750], 'a constant rate: evenly spaced');
  const ramp = arrivalTimes(10, 0, [{ target: 10, duration: '10s' }]);
  t.equal(ramp.length, 50, 'a ramp 0 -> 10/s over 10 s: 50');
  t.ok(ramp[0]! >= 10000 && ramp[49]! <= 20000 && ramp[9]! > 10000 + 3000, 'denser at the end');
  t.equal(arrivalTimes(0, 10, [{ target: 0, duration: '10s' }]).length, 50, 'a ramp down too');
});

t.test('soak: a steady rate for DURATION', async (t) => {
  const { scenarios: { steady }, perSecond, arrivals } = soakPlan(env({ VISITORS: '36000', DURATION: '60m' }), 120);
  t.equal(perSecond, 10);
  t.equal(arrivals.at.length, 36000);
  t.equal(steady.vus, 200);
  t.equal(soakPlan(env({ VISITORS: '10', DURATION: '20s' }), 120).scenarios.steady.vus, 2, 'tiny runs too');
  t.throws(() => env({ DURATION: 'ten minutes' }), /DURATION "ten minutes"/);
  t.throws(() => env({ VISITORS: '-3' }), /VISITORS must be a non-negative number/);
});

t.test("bots: the headers score what the script says, so the CAPTCHA's promise is the gateway's", async (t) => {
  for (const [kind, h] of Object.entries(BOT_HEADERS)) {
    t.equal(headerScore(h as Record<string, string>), BOT_HEADER_SCORES[kind as keyof typeof BOT_HEADER_SCORES], `${kind}: header score`);
  }
  t.ok(headerScore(HUMAN_HEADERS) < 50, `a shopper's headers (${headerScore(HUMAN_HEADERS)}) stay under the default threshold`);
});

t.test("bots: each kind's promise follows the room's settings", async (t) => {
  const e = env({ VISITORS: '60', DURATION: '10s' });
  const room = (captcha: { mode: string; threshold: number }, limits = DEFAULT_LIMITS) => ({ hammerRate: 30, limits, captcha, maxWait: 120 });
  const challenged = botsPlan(e, room({ mode: 'suspicious', threshold: 50 }));
  t.same(challenged.promised, { hammer: 1, subnet: 1, nocookie: 1 }, 'suspicious at 50: every bot scores 55, every join challenged');
  t.same(botsPlan(e, room({ mode: 'suspicious', threshold: 60 })).promised.subnet, 0, 'a threshold above their score promises nothing for a slow kind');
  const off = botsPlan(e, room({ mode: 'off', threshold: 50 }));
  // 300 hammer joins from 3 IPs in 10 s: each IP's bucket lets 10 + 1/s through, 60 in all.
  t.equal(off.promised.hammer, 0.8);
  t.equal(off.promised.subnet, 0, '2 joins/s over 254 IPs: no bucket fills');
  t.same(botThresholds(off.promised), { 'bot_stopped{kind:hammer}': ['rate>=0.78'] }, 'a threshold only where there is a promise');
  t.same(botThresholds(challenged.promised)['bot_stopped{kind:subnet}'], ['rate==1']);
  const tight = botsPlan(e, room({ mode: 'off', threshold: 50 }, { ...DEFAULT_LIMITS, subnet: { capacity: 5, refillPerSec: 0.5 } }));
  t.equal(tight.promised.subnet, 0.5, "the subnet's bucket: 5 + 0.5/s of 20 joins");
  t.equal(challenged.humanArrivals.at.length, challenged.humans, 'the humans the default stock lasts for');
  t.equal(challenged.scenarios.humans.iterations, challenged.scenarios.humans.vus, 'carried by a few VUs, one iteration each');
});
