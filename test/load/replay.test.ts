/**
 * The replay driver and its report against the real product (gateway + checkout started here
 * with their own Redis prefix and Postgres database): a synthetic drop is recorded by the
 * gateway, the 2,000-arrival recording is replayed into a fresh room, and the replay must show
 * the same outcome counts and the same ticket order, with report figures that match the audit.
 * The recorded drop has CAPTCHA off, so its bots buy most units: that report fails the check on
 * who got the units, and the same drop with the setting its hint names sells to humans only.
 */
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startProduct } from '../../load-tests/replay/product.js';
import { replay } from '../../load-tests/replay/driver.js';
import { makeProfile } from '../../load-tests/replay/profiles.js';
import { parseRecording } from '../../load-tests/replay/ndjson.js';
import { buildReport } from '../../load-tests/replay/report.js';
import { renderHtml, writeReport } from '../../load-tests/replay/render.js';
import { audit, recording } from '../../load-tests/replay/api.js';

// Deterministic room: buckets that barely refill (so who is limited depends on order, not on
// timing), no CAPTCHA, a small admission window so the sale sells out after a few dozen.
// The recording's bot visitors are not followed by the replay: admitted, they never reserve, and
// with stock-aware admission (docs/api.md section 7) each holds a place until its claim lapses.
// Short claims and some overbooking keep this 60 s rehearsal about the replay, not about ghosts.
const ROOM = {
  claimSeconds: 10,
  overbook: 2,
  limits: { ip: { capacity: 10, refillPerSec: 0.001 }, subnet: { capacity: 100, refillPerSec: 0.001 }, room: { capacity: 100_000, refillPerSec: 10_000 } },
  captcha: { mode: 'off', threshold: 50 },
};
const STOCK = 20;
const quiet = () => {};

const dataDir = await mkdtemp(path.join(tmpdir(), 'replay-'));
const product = await startProduct({ dataDir });
t.teardown(async () => {
  await product.close();
  await rm(dataDir, { recursive: true, force: true });
});

t.test('a 2,000-arrival recording replays with the same outcomes and order; the report matches the audit', async (t) => {
  const profile = makeProfile('bots30', 2200, 11);
  const arrivals = profile.arrivals.slice(0, 2000);
  const common = { targets: product, stock: STOCK, roomConfig: ROOM, admitRatePerMin: 1200, maxActive: 25, ordered: true, holdAdmission: true, timeoutSec: 60, progress: false, log: quiet };

  // 1. The original drop, recorded by the gateway.
  const first = await replay({ ...common, source: 'profile:bots30', arrivals, open: profile.open, record: true });
  const r1 = buildReport(first);
  const text = await recording(product, first.room);
  t.ok(text, 'the gateway serves the recording');
  const rec = parseRecording(text!);
  t.equal(rec.arrivals.length, 2000, 'one line per join attempt');
  t.notOk(/127\.\d+\.\d+\.\d+/.test(text!), 'no raw address in the recording');
  t.same(Object.fromEntries(Object.entries(r1.outcomes).sort()), Object.fromEntries(Object.entries(countBy(rec.arrivals.map((a) => a.outcome))).sort()),
    'the recording holds the outcomes the driver saw');
  t.ok((r1.outcomes.rate_limited ?? 0) > 0, 'some bots were rate limited');

  // Bot figures of the labelled run, recounted from the raw attempts.
  const botStopped = first.attempts.filter((a) => arrivals[a.i]!.bot && a.outcome !== 'joined').length;
  const humansLimited = new Set(first.attempts.filter((a) => !arrivals[a.i]!.bot && a.outcome === 'rate_limited').map((a) => arrivals[a.i]!.visitor)).size;
  t.equal(r1.bots!.botAttemptsStopped, botStopped);
  t.equal(r1.bots!.humansLimited, humansLimited);
  t.equal(r1.bots!.botAttempts, arrivals.filter((a) => a.bot).length);

  // Who got the units: the bots (in the pre-queue, their places drawn before any human came).
  const botCheck = r1.checks.find((c) => /^bots' share of units sold/.test(c.name));
  const botBuyers = first.visitors.filter((v) => v.purchase === 'success' && arrivals.find((a) => a.visitor === v.visitor)!.bot).length;
  t.equal(r1.bots!.botUnits, botBuyers, 'units to bots, recounted');
  t.equal(r1.bots!.humanUnits, r1.sales.purchases - botBuyers, 'units to humans');
  t.ok(botBuyers > STOCK / 10, `bots got more than a tenth of the units (${botBuyers} of ${STOCK})`);
  t.equal(botCheck?.ok, false, 'the check on who got the units fails');
  t.equal(r1.ok, false, 'and so does the verdict');
  t.same(botCheck?.fix, { captcha: { mode: 'suspicious', threshold: 50 } }, 'the hint: CAPTCHA on at the default threshold');
  t.same(r1.checks.filter((c) => !c.ok).map((c) => c.name), [botCheck?.name], 'every other check passes');

  // 2. The replay of the recording into a fresh room and sale.
  const second = await replay({ ...common, source: 'file:recording', arrivals: rec.arrivals, open: rec.open });
  const r2 = buildReport(second);
  t.same(Object.fromEntries(Object.entries(r2.outcomes).sort()), Object.fromEntries(Object.entries(r2.replay!.recordedOutcomes).sort()), 'same outcome counts');
  t.equal(r2.replay!.orderDiscordant, 0, 'same ticket order');
  t.ok(r2.replay!.orderPairs >= 1000, `ticketed joins compared (${r2.replay!.orderPairs})`);
  t.equal(r2.replay!.orderTau, 1);

  // 3. The report's figures are the audit's.
  for (const [run, r] of [[first, r1], [second, r2]] as const) {
    const a = await audit(product, run.sale);
    t.equal(a.ok, true, `${run.room}: audit ok`);
    t.same(r.audit, a, 'the report carries the audit');
    t.equal(r.sales.sold, a.sold, 'units sold = audit sold');
    t.equal(r.sales.purchases, a.paidCounted, 'purchases seen by shoppers = paid orders');
    t.equal(r.sales.sold, STOCK, 'sold out');
    t.equal(r.fairness.overtakes, 0, 'nobody overtaken after open');
    if (r === r2) t.ok(r.ok && r.checks.every((c) => c.ok), `all checks pass: ${JSON.stringify(r.checks.filter((c) => !c.ok))}`);
    t.equal(r.timeline.bins.reduce((s, b) => s + b.arrivals, 0), 2000, 'every attempt is in the arrivals chart');
    t.equal(r.timeline.bins.reduce((s, b) => s + b.admissions, 0), r.sales.admitted, 'every admission is in the admissions chart');
  }

  // 4. The files.
  const out = path.join(dataDir, 'report');
  const files = await writeReport(out, r2);
  t.same(JSON.parse(await readFile(files.json, 'utf8')), JSON.parse(JSON.stringify(r2)));
  const html = await readFile(files.html, 'utf8');
  t.equal(html, renderHtml(r2));
  t.equal((html.match(/<svg /g) ?? []).length, 3, 'three inline SVG charts');
  // The one URL it carries is the room's fairness report, as text (nothing is loaded from it).
  t.ok(r2.fairnessReport && html.includes(r2.fairnessReport.url), 'the fairness report is linked');
  t.notOk(/<script|https?:\/\/(?!www\.w3\.org)/.test(html.replaceAll(r2.fairnessReport?.url ?? '', '')), 'no script and no other external URL');

  // 5. The same drop with the hint's setting: bots are challenged (a replay solves no CAPTCHA).
  const third = await replay({ ...common, source: 'profile:bots30', arrivals, open: profile.open, roomConfig: { ...ROOM, ...botCheck?.fix } });
  const r3 = buildReport(third);
  t.equal(r3.bots!.botUnits, 0, 'no unit to a bot');
  t.equal(r3.sales.sold, STOCK, 'humans bought them all');
  t.equal(r3.bots!.humansChallenged, 0, 'no human challenged');
  t.ok(r3.ok, `all checks pass: ${JSON.stringify(r3.checks.filter((c) => !c.ok))}`);
});

t.test('visitors spread over two worker processes: every attempt comes back, each visitor once', async (t) => {
  const profile = makeProfile('spike', 300, 5);
  const d = await replay({
    targets: product, source: 'profile:spike', arrivals: profile.arrivals, open: profile.open, stock: 10, speed: 2,
    processes: 2, maxActive: 15, admitRatePerMin: 3000, timeoutSec: 60, progress: false, log: quiet, holdAdmission: true,
  });
  t.equal(d.processes, 2);
  t.same(d.attempts.map((a) => a.i).sort((x, y) => x - y), profile.arrivals.map((_, i) => i), 'one result per attempt');
  t.equal(new Set(d.visitors.map((v) => v.visitor)).size, d.visitors.length, 'a visitor is followed by one process only');
  t.equal(d.visitors.length, 300, 'admission held until all were sent: every visitor got a place');
  const r = buildReport(d);
  const a = await audit(product, d.sale);
  t.equal(r.sales.sold, 10);
  t.equal(a.paidCounted, r.sales.purchases);
  t.ok(r.checks.every((c) => c.ok), JSON.stringify(r.checks.filter((c) => !c.ok)));
  // Everyone not admitted was told the room sold out (nobody left hanging).
  t.same(
    [...new Set(d.visitors.filter((v) => v.admittedAt === null).map((v) => v.waitEnd))],
    d.visitors.some((v) => v.admittedAt === null) ? ['sold_out'] : [],
  );
});

function countBy(xs: string[]): Record<string, number> {
  const m: Record<string, number> = {};
  for (const x of xs) m[x] = (m[x] ?? 0) + 1;
  return m;
}
