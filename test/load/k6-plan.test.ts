/**
 * What the k6 scripts ask k6 for, checked in Node: load-tests/lib/plan.js has no k6 module, so
 * its scenarios and the bots' promise are plain values. k6's own reading of the same options
 * (and the scripts run for real) is in k6-run.test.ts.
 */
import t from 'tap';
import { headerScore } from '../../waiting-room/defence/score.js';
import {
  botsPlan, botThresholds, BOT_HEADERS, BOT_HEADER_SCORES, DEFAULT_LIMITS, dropDayPlan, durationSeconds, HUMAN_HEADERS,
  iterationsOf, loadEnv, soakPlan,
} from '../../load-tests/lib/plan.js';

const SIZES = [['100', '20s'], ['300', '20s'], ['1000', '2m'], ['20000', '10m'], ['50000', '10m']] as const;
const env = (E: Record<string, string>, d = { visitors: 1000, stock: 100, duration: '2m' }) => loadEnv(E, d);

t.test('drop-day: pre-queue then spike, about VISITORS shoppers, VUs k6 accepts and enough of them', async (t) => {
  for (const [visitors, duration] of SIZES) {
    const { scenarios: { prequeue, spike }, prequeueSec } = dropDayPlan(env({ VISITORS: visitors, DURATION: duration }), 0.3, 60);
    for (const [name, s] of [['prequeue', prequeue], ['spike', spike]] as const) {
      // k6 refuses a scenario whose maxVUs is under its preAllocatedVUs (the 300-visitor run did).
      t.ok(s.preAllocatedVUs >= 1 && s.preAllocatedVUs <= s.maxVUs, `${visitors}/${duration} ${name}: 1 <= preAllocatedVUs ${s.preAllocatedVUs} <= maxVUs ${s.maxVUs}`);
      t.ok(s.maxVUs >= iterationsOf(s), `${visitors}/${duration} ${name}: a VU for every shopper that may wait at once`);
    }
    t.equal(durationSeconds(spike.startTime), prequeueSec, 'the spike starts at open');
    t.equal(durationSeconds(prequeue.stages[0]!.duration), prequeueSec, 'the pre-queue lasts until open');
    const pre = iterationsOf(prequeue);
    const total = pre + iterationsOf(spike);
    t.ok(Math.abs(total - Number(visitors)) / Number(visitors) < 0.15, `${visitors} over ${duration}: ${Math.round(total)} shoppers`);
    t.ok(pre / total > 0.2 && pre / total < 0.4, `about 30% in the pre-queue (${Math.round((100 * pre) / total)}%)`);
  }
});

t.test('soak: a steady rate for DURATION', async (t) => {
  const { scenarios: { steady }, perSecond } = soakPlan(env({ VISITORS: '36000', DURATION: '60m' }));
  t.equal(perSecond, 10);
  t.equal(iterationsOf(steady), 36000);
  t.ok(steady.preAllocatedVUs <= steady.maxVUs);
  const tiny = soakPlan(env({ VISITORS: '10', DURATION: '20s' })).scenarios.steady;
  t.ok(tiny.preAllocatedVUs >= 1 && tiny.preAllocatedVUs <= tiny.maxVUs, 'tiny runs too');
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
  const room = (captcha: { mode: string; threshold: number }, limits = DEFAULT_LIMITS) => ({ hammerRate: 30, limits, captcha });
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
  t.equal(iterationsOf(challenged.scenarios.humans), challenged.humans, 'the humans the default stock lasts for');
  t.ok(challenged.scenarios.humans.maxVUs >= challenged.humans, 'a VU for every human that may wait at once');
});
