/**
 * The replay report links the room's signed fairness report (GET /api/rooms/:room/report) and
 * checks it against its own counts: entrants, admissions, units bought and the `chance` table
 * bucket by bucket. A real small drop with ghosts (so chances between 0 and 1 are shown) against
 * the real product: every comparison passes; the same run with one count of the fetched report
 * tampered with shows that comparison as a failed check.
 */
import t from 'tap';
import { startProduct } from '../../load-tests/replay/product.js';
import { replay } from '../../load-tests/replay/driver.js';
import { makeProfile } from '../../load-tests/replay/profiles.js';
import { buildReport } from '../../load-tests/replay/report.js';
import { renderHtml, renderText, verdict } from '../../load-tests/replay/render.js';

const quiet = () => {};

t.test('the replay checks the fairness report against its own counts', async (t) => {
  const product = await startProduct();
  t.teardown(() => product.close());
  const profile = makeProfile('spike', 100, 3);
  const d = await replay({
    targets: product, source: 'profile:spike', arrivals: profile.arrivals, open: profile.open, stock: 8,
    admitRatePerMin: 600, maxActive: 100, holdAdmission: true, ghostShare: 0.3, roomConfig: { claimSeconds: 10 },
    timeoutSec: 120, progress: false, log: quiet,
  });
  const r = buildReport(d);
  t.ok(r.fairnessReport, 'the fairness report was fetched');
  t.equal(r.fairnessReport!.url, `${product.gateway}/api/rooms/${d.room}/report`, 'and is linked');
  t.equal(r.fairnessReport!.published, true, 'published: the room sold out');
  t.match(renderText(r), r.fairnessReport!.url, 'the terminal report shows the link');
  t.match(renderHtml(r), `<a href="${r.fairnessReport!.url}">`, 'the HTML report links it');
  const mine = r.checks.filter((c) => c.name.startsWith('fairness report'));
  t.same(mine.map((c) => c.name), ['fairness report: entrants', 'fairness report: admitted', 'fairness report: units sold', 'fairness report: chance shown vs got a unit']);
  t.same(mine.filter((c) => !c.ok), [], 'every comparison passes on a real run');
  t.ok(r.fairnessReport!.chance.some((b) => b.visitors[1] > 0 && b.from > 0 && b.to < 1), 'with visitors shown a chance between the ends');
  t.equal(r.fairnessReport!.unitsSold[1], 8);

  const tampered = (edit: (rep: any) => void) => {
    const copy = structuredClone(d);
    edit(copy.fairnessReport!.body.report);
    return buildReport(copy);
  };
  const failed = (x: ReturnType<typeof buildReport>) => x.checks.filter((c) => !c.ok).map((c) => c.name);
  t.same(failed(tampered((rep) => rep.units.sold++)), ['fairness report: units sold'], 'one unit more in the report: a failed check');
  t.same(failed(tampered((rep) => rep.entrants.total--)), ['fairness report: entrants'], 'an entrant missing: a failed check');
  t.same(failed(tampered((rep) => rep.admitted++)), ['fairness report: admitted']);
  const bucket = tampered((rep) => { const b = rep.chance.buckets.find((x: any) => x.visitors > 0); b.visitors++; });
  t.same(failed(bucket), ['fairness report: chance shown vs got a unit'], 'a visitor added to a chance bucket: a failed check');
  t.equal(bucket.ok, false);
  t.match(verdict(bucket), /FAILED: fairness report: chance shown vs got a unit/);

  // Not over yet: linked, not checked. Not answered: a failed check.
  const answer = (status: number, body: unknown) => buildReport({ ...d, fairnessReport: { ...d.fairnessReport!, status, body } });
  const early = answer(409, { error: 'not_yet', state: 'open' });
  t.same([early.fairnessReport!.published, early.fairnessReport!.error, failed(early)], [false, 'not_yet', []], '409 not_yet: not published, nothing failed');
  t.match(renderText(early), 'not published (409 not_yet)');
  t.same(failed(answer(503, { error: 'unavailable' })), ['fairness report published'], '503: a failed check');
});
