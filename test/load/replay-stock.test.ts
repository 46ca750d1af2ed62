/**
 * The replay report on stock-aware admission (docs/api.md section 7, issue 13): admitted per unit
 * sold, admitted shoppers told sold_out, open to sold out, and the calibration of `chance` (the
 * last chance each visitor was shown against whether it got a unit). A real small drop against
 * the real product, with ghosts (visitors who walk away once admitted) so that the room sees
 * claims lapse and shows chances between 0 and 1; every figure is recounted from what the
 * shoppers saw, the audit and the room's own fairness report.
 */
import t from 'tap';
import { startProduct } from '../../load-tests/replay/product.js';
import { replay, type ReplayData } from '../../load-tests/replay/driver.js';
import { makeProfile } from '../../load-tests/replay/profiles.js';
import { buildReport, calibration, CHANCE_BUCKETS, unanswered } from '../../load-tests/replay/report.js';
import { renderHtml, renderText } from '../../load-tests/replay/render.js';
import { audit } from '../../load-tests/replay/api.js';
import { request } from '../../load-tests/replay/http.js';
import { isGhost } from '../../load-tests/replay/shard.js';

const STOCK = 8;
const GHOSTS = 0.3;
const quiet = () => {};

t.test('a drop with ghosts: the admission figures and the calibration table recount from the run', async (t) => {
  const product = await startProduct();
  t.teardown(() => product.close());
  const profile = makeProfile('spike', 120, 3);
  // Admission held until every join is in, so everyone waits (and is shown a chance) before the first admission.
  const d = await replay({
    targets: product, source: 'profile:spike', arrivals: profile.arrivals, open: profile.open, stock: STOCK,
    admitRatePerMin: 600, maxActive: 100, holdAdmission: true, ghostShare: GHOSTS, roomConfig: { claimSeconds: 10 },
    timeoutSec: 120, progress: false, log: quiet,
  });
  const r = buildReport(d);
  const a = await audit(product, d.sale);
  t.equal(a.ok, true, 'audit ok');
  t.equal(a.sold, STOCK, 'sold out');

  // Ghosts: the same visitors the hash picks, and they never bought.
  const ghosts = d.visitors.filter((v) => v.ghost);
  t.same(ghosts.map((v) => v.visitor).sort(), d.visitors.filter((v) => isGhost(v.visitor, GHOSTS)).map((v) => v.visitor).sort(), 'ghosts are the hashed share');
  t.ok(ghosts.length > 0 && ghosts.length < d.visitors.length, `some ghosts (${ghosts.length} of ${d.visitors.length})`);
  t.notOk(ghosts.some((v) => v.purchase === 'success'), 'no ghost bought');
  t.equal(r.admission.walkedAway, ghosts.filter((v) => v.admittedAt !== null).length, 'walked away = ghosts admitted');
  t.ok(r.admission.walkedAway > 0, 'a ghost was admitted and walked away: its claim lapsed in the room');

  // Admission figures against the room and the audit.
  const room = (await request(`${product.gateway}/api/rooms/${d.room}`)).json;
  t.equal(room.state, 'sold_out');
  t.equal(r.admission.admitted, room.admittedThrough, "admitted = the room's admittedThrough");
  t.equal(r.admission.admitted, d.visitors.filter((v) => v.admittedAt !== null).length, 'every admission was a followed visitor');
  t.equal(r.admission.admittedPerUnitSold, Math.round((room.admittedThrough / (a.sold as number)) * 100) / 100, 'admitted per unit sold');
  t.ok(r.admission.admittedPerUnitSold! > 1, 'ghosts cost admissions: more than one per unit');
  t.equal(r.admission.metSoldOut, d.visitors.filter((v) => v.purchase === 'reserve:sold_out').length, 'admitted shoppers who met sold_out');
  t.ok(r.admission.promptMetSoldOut <= r.admission.metSoldOut);
  t.same([r.admission.overbook, r.admission.claimSeconds, r.admission.ghostShare], [1, 10, GHOSTS], 'the room settings as stored');
  t.ok(r.checks.some((c) => /within claimSeconds met sold_out/.test(c.name)), 'overbook 1: the contract is checked');
  const fair = (await request(`${product.gateway}/api/rooms/${d.room}/report`)).json.report;
  t.ok(r.admission.soldOutAfterSec !== null && Math.abs(r.admission.soldOutAfterSec - fair.openToSoldOutSeconds) <= 3,
    `open to sold out ${r.admission.soldOutAfterSec} s, the room's own report ${fair.openToSoldOutSeconds} s (the replay samples about once a second)`);
  t.equal(r.sales.soldOutAfterSec, r.admission.soldOutAfterSec);

  // The calibration table: its shape, and counts that add up to the visitors shown a chance.
  const c = r.calibration;
  t.same(c.buckets.map((b) => [b.from, b.to]), CHANCE_BUCKETS, 'the five buckets');
  const counted = d.visitors.filter((v) => !v.ghost && !unanswered(v));
  const shown = counted.filter((v) => typeof v.chance === 'number');
  t.ok(shown.length > 0, `visitors were shown a chance (${shown.length})`);
  t.equal(c.buckets.reduce((s, b) => s + b.visitors, 0), shown.length, 'bucket counts add up to the visitors shown a chance');
  t.equal(c.withChance, shown.length);
  t.equal(c.withChance + c.withoutChance, counted.length, 'shown + never shown = the shoppers answered');
  t.equal(c.buckets.reduce((s, b) => s + b.gotUnit, 0) + c.withoutChanceGotUnit, a.paidCounted, 'units got, over the table = paid orders');
  for (const b of c.buckets) {
    if (!b.visitors) {
      t.same([b.shownMean, b.actual, b.gotUnit], [null, null, 0], `${b.from}-${b.to}: empty`);
      continue;
    }
    t.ok(b.shownMean! >= b.from && b.shownMean! <= b.to, `${b.from}-${b.to}: mean shown ${b.shownMean} inside the bucket`);
    t.equal(b.actual, Math.round((b.gotUnit / b.visitors) * 10000) / 10000);
  }
  t.ok(shown.some((v) => v.chance! > 0 && v.chance! < 1), `a chance between 0 and 1 was shown (lapsed claims seen): ${[...new Set(shown.map((v) => v.chance))].join(', ')}`);

  const text = renderText(r);
  t.match(text, /admitted per unit sold\s+\S+ \(\d+ admitted for 8 units\)/);
  t.match(text, /chance 90%-100%/);
  t.match(renderHtml(r), /chance 30%-60%/);
});

/** A visitor of hand-made replay data. */
function visitor(i: number, fields: Partial<ReplayData['visitors'][number]>): ReplayData['visitors'][number] {
  return {
    visitor: `v${i}`, joinedAt: 1000 + i, joinTicket: i + 1, admittedAt: null, admittedTicket: null, waitEnd: 'sold_out',
    purchase: null, purchasedAt: null, reserveSentAt: null, chance: null, ...fields,
  };
}

function data(visitors: ReplayData['visitors'], overbook: number): ReplayData {
  const open = 1000;
  return {
    source: 'profile:spike', room: 'r', sale: 'r', targets: { gateway: 'g', checkout: 'c' }, speed: 1, stock: 1, processes: 1,
    ordered: false, startedAt: 0, openAt: open, endedAt: open + 60_000,
    arrivals: visitors.map((v) => ({ t: 0, ip: 'i', subnet: 's', visitor: v.visitor, ua: 'browser' as const, outcome: 'synthetic', ticket: null })),
    attempts: visitors.map((_, i) => ({ i, sentAt: open + i, latencyMs: 1, status: 200, outcome: 'joined', ticket: i + 1, state: 'open' })),
    visitors, samples: [{ at: open + 5000, queued: 0, admittedThrough: 3, state: 'sold_out', held: false, sold: 1, available: 0 }],
    roomDefence: { captcha: { mode: 'off', threshold: 50 }, allow: [] }, roomStock: { overbook, claimSeconds: 10 }, ghostShare: 0,
    saleEnd: { sold: 1 }, audit: { ok: true, sold: 1, paidCounted: 1 },
  };
}

t.test('the overbook-1 check fails on a prompt shopper told sold_out, not on a late one', async (t) => {
  const buyer = visitor(0, { admittedAt: 2000, waitEnd: 'admitted', purchase: 'success', reserveSentAt: 2100, chance: 1 });
  const late = visitor(1, { admittedAt: 2000, waitEnd: 'admitted', purchase: 'reserve:sold_out', reserveSentAt: 2000 + 10_001, chance: 0.5 });
  const prompt = visitor(2, { admittedAt: 2000, waitEnd: 'admitted', purchase: 'reserve:sold_out', reserveSentAt: 2000 + 10_000, chance: 0.25 });
  const name = /within claimSeconds met sold_out/;
  const lateOnly = buildReport(data([buyer, late, visitor(3, { chance: 0.05 })], 1));
  t.same([lateOnly.admission.metSoldOut, lateOnly.admission.promptMetSoldOut], [1, 0]);
  t.equal(lateOnly.checks.find((c) => name.test(c.name))?.ok, true, 'a shopper who reserved after its claim lapsed is not covered');
  const withPrompt = buildReport(data([buyer, late, prompt], 1));
  t.same([withPrompt.admission.metSoldOut, withPrompt.admission.promptMetSoldOut], [2, 1]);
  t.equal(withPrompt.checks.find((c) => name.test(c.name))?.ok, false, 'one who reserved within claimSeconds fails the check');
  t.equal(withPrompt.ok, false);
  t.notOk(buildReport(data([buyer, late, prompt], 2)).checks.some((c) => name.test(c.name)), 'overbook above 1 promises nothing: no check');
  t.equal(withPrompt.admission.admittedPerUnitSold, 3, '3 admitted (the last sample) for 1 unit');

  const cal = calibration([buyer, late, prompt, visitor(3, { chance: 0.05 }), visitor(4, { chance: 0.9 }), visitor(5, {}), visitor(6, { waitEnd: 'timeout', chance: 0.5 })]);
  t.same(cal.buckets.map((b) => b.visitors), [1, 1, 1, 0, 2], 'last chance shown, bucketed; the top bucket holds 0.9 and 1');
  t.same(cal.buckets.map((b) => b.gotUnit), [0, 0, 0, 0, 1]);
  t.same(cal.buckets[4], { from: 0.9, to: 1, visitors: 2, shownMean: 0.95, gotUnit: 1, actual: 0.5 });
  t.same([cal.withChance, cal.withoutChance, cal.withoutChanceGotUnit], [5, 1, 0], 'never shown one: counted apart; left waiting: not counted');
});
