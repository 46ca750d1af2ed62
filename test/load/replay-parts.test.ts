import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { kendallTau } from '../../shared/kendall.js';
import { parseRecording, inferOpen, toNdjson, RecordingError, type ReplayArrival } from '../../load-tests/replay/ndjson.js';
import { makeProfile, mulberry32, PROFILES } from '../../load-tests/replay/profiles.js';
import { AddressMap, subnet24 } from '../../load-tests/replay/addresses.js';
import { botHint, buildReport, fairness, headerScoreOf, percentiles } from '../../load-tests/replay/report.js';
import { clip, renderHtml, renderText, TEXT_DETAIL_MAX } from '../../load-tests/replay/render.js';
import { screenshotReport } from '../../load-tests/replay/screenshot.js';
import type { ReplayData } from '../../load-tests/replay/driver.js';
import type { UaClass } from '../../load-tests/replay/ndjson.js';

function bruteTau(x: number[], y: number[]) {
  let c = 0, d = 0, tx = 0, ty = 0;
  const n = x.length;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) {
    const a = Math.sign(x[i]! - x[j]!), b = Math.sign(y[i]! - y[j]!);
    if (a === 0 && b === 0) continue;
    if (a === 0) tx++;
    else if (b === 0) ty++;
    else if (a === b) c++;
    else d++;
  }
  const tau = (c - d) / Math.sqrt((c + d + tx) * (c + d + ty));
  return { c, d, tau };
}

t.test('Kendall tau-b matches the O(n^2) definition on random data, with and without ties', async (t) => {
  const rnd = mulberry32(42);
  for (let round = 0; round < 60; round++) {
    const n = 2 + Math.floor(rnd() * 300);
    const range = round % 3 === 0 ? 5 : round % 3 === 1 ? 50 : 1e6; // many ties, some, none
    const x = Array.from({ length: n }, () => Math.floor(rnd() * range));
    const y = Array.from({ length: n }, () => Math.floor(rnd() * range));
    const fast = kendallTau(x, y);
    const slow = bruteTau(x, y);
    if (Number.isNaN(slow.tau)) {
      t.equal(fast.tau, null, `round ${round}: constant side gives null`);
      continue;
    }
    t.equal(fast.discordant, slow.d, `round ${round}: discordant pairs`);
    t.equal(fast.concordant, slow.c, `round ${round}: concordant pairs`);
    t.ok(Math.abs(fast.tau! - slow.tau) < 1e-12, `round ${round}: tau ${fast.tau} vs ${slow.tau}`);
  }
  t.equal(kendallTau([1, 2, 3, 4], [10, 20, 30, 40]).tau, 1);
  t.equal(kendallTau([1, 2, 3, 4], [40, 30, 20, 10]).tau, -1);
  t.equal(kendallTau([1], [1]).tau, null);
  t.throws(() => kendallTau([1, 2], [1]), RangeError);
});

t.test('Kendall tau handles 200,000 pairs (n log n)', async (t) => {
  const n = 200_000;
  const x = Array.from({ length: n }, (_, i) => i);
  const y = x.map((i) => (i % 1000 === 0 ? i + 1.5 : i)); // 200 adjacent swaps
  const k = kendallTau(x, y);
  t.equal(k.discordant, 200);
  t.ok(k.tau! > 0.99999 && k.tau! < 1);
});

t.test('fairness counts out-of-order admissions and skipped earlier arrivals', async (t) => {
  // Arrivals at 1..5; admitted tickets: 1, 3, 2, never, 4.
  const f = fairness([1, 2, 3, 4, 5], [1, 3, 2, null, 4]);
  t.equal(f.n, 4);
  t.equal(f.discordant, 1);
  t.equal(f.skipped, 1);
  t.equal(f.overtakes, 2);
  t.equal(f.tau, Math.round(((5 - 1) / 6) * 10000) / 10000);
  const perfect = fairness([3, 1, 2], [3, 1, 2]);
  t.same(perfect, { n: 3, tau: 1, discordant: 0, skipped: 0, overtakes: 0 });
});

t.test('percentiles: nearest rank', async (t) => {
  const v = Array.from({ length: 100 }, (_, i) => i + 1);
  t.same(percentiles(v), { n: 100, p50: 50, p95: 95, p99: 99, max: 100 });
  t.same(percentiles([]), { n: 0, p50: null, p95: null, p99: null, max: null });
});

const line = (o: Partial<ReplayArrival>) => JSON.stringify({ t: 0, ip: 'i', subnet: 's', visitor: 'v', ua: 'browser', outcome: 'joined', ticket: null, ...o });

t.test('NDJSON: header, blank lines, sorting, errors with line numbers', async (t) => {
  const text = [
    JSON.stringify({ type: 'recording', v: 1, room: 'r', t0: 5 }),
    line({ t: 20, ticket: 2 }),
    '',
    line({ t: 10, ticket: 1, open: 8 }),
    line({ t: 5, ua: 'empty', outcome: 'rate_limited' }),
  ].join('\n');
  const r = parseRecording(text);
  t.same(r.header, { type: 'recording', v: 1, room: 'r', t0: 5 });
  t.same(r.arrivals.map((a) => a.t), [5, 10, 20]);
  t.equal(r.open, 8);
  t.same(parseRecording(toNdjson(r.arrivals)).arrivals, r.arrivals, 'round trip');
  t.throws(() => parseRecording('{"t":1}\nnot json'), RecordingError);
  t.throws(() => parseRecording(line({ t: 1 }) + '\n' + line({ ua: 'fax' as never })), /line 2: "ua"/);
  t.throws(() => parseRecording(line({ ticket: 1.5 })), /line 1: "ticket"/);
  t.throws(() => parseRecording('[1]'), /line 1: not an object/);
});

t.test('open is inferred from pre-queue joins and the first ticket when lines lack it', async (t) => {
  const arr = (xs: [number, string, number | null][]) => xs.map(([tt, outcome, ticket]) => JSON.parse(line({ t: tt, outcome, ticket })));
  t.equal(inferOpen(arr([[0, 'joined', null], [100, 'joined', null], [300, 'joined', 1]])), 200);
  t.equal(inferOpen(arr([[50, 'joined', 1], [60, 'joined', 2]])), 50);
  t.equal(inferOpen(arr([[0, 'joined', null], [10, 'rate_limited', null]])), 1);
});

t.test('profiles: sizes, labels, deterministic by seed, pre-queue share', async (t) => {
  for (const name of PROFILES) {
    const p = makeProfile(name, 1000, 7);
    const humans = new Set(p.arrivals.filter((a) => !a.bot).map((a) => a.visitor));
    t.equal(humans.size, name === 'bots30' ? 700 : 1000, `${name}: humans`);
    t.same(makeProfile(name, 1000, 7).arrivals, p.arrivals, `${name}: same seed, same arrivals`);
    t.equal(p.arrivals[0]!.t, 0, `${name}: offsets start at 0`);
    t.ok(p.arrivals.every((a, i) => i === 0 || a.t >= p.arrivals[i - 1]!.t), `${name}: sorted`);
  }
  const pre = makeProfile('prequeue', 2000, 3);
  const before = new Set(pre.arrivals.filter((a) => a.t < pre.open).map((a) => a.visitor)).size;
  t.ok(before > 1200 && before < 1600, `about 70% in the pre-queue (${before})`);
  const b = makeProfile('bots30', 1000, 1);
  const bots = b.arrivals.filter((a) => a.bot);
  const hammerIps = new Set(bots.filter((a) => a.ip.startsWith('bh')).map((a) => a.ip)).size;
  t.equal(hammerIps, 3, 'three hammering IPs');
  t.equal(new Set(bots.map((a) => a.visitor)).size, 300, '30% of the 1,000 visitors are bots, a hammering IP being one visitor');
  t.equal(new Set(b.arrivals.map((a) => a.visitor)).size, 1000, '1,000 visitors in all');
  const hammer = bots.filter((a) => a.ip === 'bh0');
  t.equal(hammer.length, 40, 'a hammering IP sends 40 attempts');
  t.ok(hammer.every((a) => a.noCookie), 'without a cookie');
  t.equal(new Set(bots.filter((a) => a.subnet === 'bfs0').map((a) => a.ip)).size, 148, 'one /24 with many IPs');
  t.ok(bots.some((a) => a.noCookie), 'cookie-less clients');
  t.not(makeProfile('spike', 100, 1).arrivals[5]!.t, makeProfile('spike', 100, 2).arrivals[5]!.t);
});

t.test('addresses: stable per IP, same /24 per subnet, distinct /24s, all in 127/8', async (t) => {
  const m = new AddressMap();
  const a1 = m.addressOf('ipA', 'net1');
  const a2 = m.addressOf('ipB', 'net1');
  const b1 = m.addressOf('ipC', 'net2');
  t.equal(m.addressOf('ipA', 'net1'), a1, 'same IP, same address');
  t.not(a1, a2);
  t.equal(subnet24(a1), subnet24(a2), 'same subnet, same /24');
  t.not(subnet24(a1), subnet24(b1), 'other subnet, other /24');
  t.equal(a1, '127.1.0.1');
  for (let i = 0; i < 600; i++) m.addressOf(`n${i}`, `net-${i}`);
  const last = m.addressOf('x', 'net-599');
  t.equal(last, '127.3.89.2', 'the 602nd subnet is 127.3.89.0/24, its 2nd host .2');
  const seen = new Set<string>();
  for (let i = 0; i < 300; i++) seen.add(m.addressOf(`h${i}`, 'big'));
  t.equal(seen.size, 254, 'a /24 holds 254 hosts; more IPs share them');
  t.ok([...seen].every((s) => /^127\.(\d+)\.(\d+)\.(\d+)$/.test(s) && Number(s.split('.')[3]) >= 1 && Number(s.split('.')[3]) <= 254));
});

/**
 * What a replay saw, made by hand: `humans` human and `bots` bot visitors (user-agent `botUa`),
 * every one joined and admitted, the first `humanUnits` humans and `botUnits` bots bought.
 * The audit agrees, so the only check that can fail is the one on who got the units.
 */
function outcome(o: {
  humans: number; bots: number; humanUnits: number; botUnits: number; botUa?: UaClass; labelled?: boolean;
  captcha?: { mode: 'off' | 'suspicious' | 'always'; threshold: number };
}): ReplayData {
  const open = 1_000_000;
  const arrivals: ReplayArrival[] = [];
  const visitors: ReplayData['visitors'] = [];
  const add = (visitor: string, bot: boolean, ua: UaClass, bought: boolean) => {
    const i = arrivals.length;
    const a: ReplayArrival = { t: i, ip: visitor, subnet: visitor, visitor, ua, outcome: 'synthetic', ticket: null };
    if (o.labelled !== false) a.bot = bot;
    arrivals.push(a);
    const v: ReplayData['visitors'][number] = {
      visitor, joinedAt: open + i, joinTicket: i + 1, admittedAt: open + 1000 + i, admittedTicket: i + 1,
      waitEnd: 'admitted', purchase: bought ? 'success' : 'reserve:sold_out', purchasedAt: open + 2000 + i,
    };
    if (o.labelled !== false) v.bot = bot;
    visitors.push(v);
  };
  for (let i = 0; i < o.bots; i++) add(`b${i}`, true, o.botUa ?? 'bot', i < o.botUnits);
  for (let i = 0; i < o.humans; i++) add(`h${i}`, false, i % 2 ? 'mobile' : 'browser', i < o.humanUnits);
  const sold = o.humanUnits + o.botUnits;
  return {
    source: 'profile:test', room: 'r', sale: 'r', targets: { gateway: 'g', checkout: 'c' }, speed: 1, stock: sold, processes: 1,
    ordered: false, startedAt: open - 1000, openAt: open, endedAt: open + 5000, arrivals,
    attempts: arrivals.map((_, i) => ({ i, sentAt: open + i, latencyMs: 1, status: 200, outcome: 'joined', ticket: i + 1, state: 'open' })),
    visitors, samples: [], roomDefence: { captcha: o.captcha ?? { mode: 'off', threshold: 50 }, allow: [] },
    saleEnd: { sold }, audit: { ok: true, sold, paidCounted: sold },
  };
}

const BOT_CHECK = /^bots' share of units sold/;

t.test('who got the units: bots getting most of them fail the check and the verdict, with the CAPTCHA setting that stops them', async (t) => {
  const r = buildReport(outcome({ humans: 30, bots: 20, humanUnits: 2, botUnits: 18 }));
  const failed = r.checks.filter((c) => !c.ok);
  t.equal(failed.length, 1, `only the bot check fails: ${JSON.stringify(failed)}`);
  const c = failed[0]!;
  t.match(c.name, BOT_CHECK);
  t.match(c.name, /<= 10%$/, 'the rule, with the default limit, is in the check name');
  t.equal(c.detail, '18 of 20 units to bots (90%)');
  t.equal(r.ok, false, 'verdict failed');
  t.same(r.bots && { b: r.bots.botUnits, h: r.bots.humanUnits, u: r.bots.botShareOfUnits, v: r.bots.botShareOfVisitors, m: r.bots.maxBotShare },
    { b: 18, h: 2, u: 0.9, v: 0.4, m: 0.1 });
  // The bots' user agent "ScalperBot" without accept/accept-language scores 30 + 15 + 10.
  t.equal(headerScoreOf('bot'), 55);
  t.same(c.fix, { captcha: { mode: 'suspicious', threshold: 50 } }, 'the room had CAPTCHA off: suspicious at its threshold catches 55');
  t.match(c.hint!, /captcha to \{"mode":"suspicious","threshold":50\}.*scoring 55 .*the room had captcha \{"mode":"off","threshold":50\}; humans' headers scored at most 0\./);

  const text = renderText(r);
  t.match(text, /units to bots \/ humans\s+18 \/ 2 \(bots: 90\.00% of units, 40\.00% of visitors\)/);
  t.match(text, /check: bots' share of units sold <= 10%\s+FAIL \(18 of 20 units to bots \(90%\)\)\nhint\s+Set the room's captcha/);
  t.match(text, /\nverdict\s+Some checks FAILED: bots' share of units sold <= 10%$/);
  t.notMatch(text, /All checks passed/);
  const html = renderHtml(r);
  t.match(html, /<div class="verdict bad">Some checks FAILED: bots&#39; share of units sold &#60;= 10%<\/div>/);
  t.match(html, /<p class="hint">.*Set the room&#39;s captcha to \{&#34;mode&#34;:&#34;suspicious&#34;/);
  t.match(html, /<b>18 \/ 2<\/b><span>units to bots \/ humans \(bots: 90\.00% of units sold, 40\.00% of visitors\)/);
  t.notMatch(html, /All checks passed/);
  const json = JSON.parse(JSON.stringify(r));
  t.equal(json.ok, false);
  t.equal(json.checks.at(-1).fix.captcha.mode, 'suspicious', 'the JSON carries the check, hint and fix');
});

t.test('who got the units: humans getting them pass; the limit is inclusive and set by maxBotShare', async (t) => {
  const human = buildReport(outcome({ humans: 30, bots: 20, humanUnits: 20, botUnits: 0 }));
  t.equal(human.ok, true, JSON.stringify(human.checks.filter((c) => !c.ok)));
  const c = human.checks.find((x) => BOT_CHECK.test(x.name))!;
  t.ok(c.ok);
  t.equal(c.detail, '0 of 20 units to bots (0%)');
  t.equal(c.hint, undefined, 'no hint on a passed check');
  t.match(renderText(human), /\nverdict\s+All checks passed$/);
  t.match(renderHtml(human), /<div class="verdict ok">All checks passed<\/div>/);
  t.notMatch(renderHtml(human), /class="hint"/);

  const twoOfTwenty = outcome({ humans: 30, bots: 20, humanUnits: 18, botUnits: 2 });
  t.equal(buildReport(twoOfTwenty).ok, true, '10% of units to bots is within the default 10%');
  t.equal(buildReport(outcome({ humans: 30, bots: 20, humanUnits: 17, botUnits: 3 })).ok, false, '15% is not');
  const strict = buildReport(twoOfTwenty, { maxBotShare: 0 });
  t.equal(strict.ok, false, 'maxBotShare 0: any unit to a bot fails');
  t.match(strict.checks.at(-1)!.name, /<= 0%$/);
  t.equal(buildReport(outcome({ humans: 30, bots: 20, humanUnits: 2, botUnits: 18 }), { maxBotShare: 0.9 }).ok, true);
  t.throws(() => buildReport(twoOfTwenty, { maxBotShare: 1.5 }), RangeError);

  const none = buildReport(outcome({ humans: 3, bots: 3, humanUnits: 0, botUnits: 0 }));
  t.same(none.checks.at(-1), { name: "bots' share of units sold <= 10%", ok: true, detail: 'no unit sold' });

  const unlabelled = buildReport(outcome({ humans: 30, bots: 20, humanUnits: 2, botUnits: 18, labelled: false }));
  t.equal(unlabelled.bots, null, 'a recording does not say who is a bot');
  t.notOk(unlabelled.checks.some((x) => BOT_CHECK.test(x.name)), 'so there is no check on it');
});

t.test('the hint names the setting the code supports for the bots that bought', async (t) => {
  const fixOf = (o: Parameters<typeof outcome>[0]) => buildReport(outcome(o)).checks.at(-1)!;
  const heavy = { humans: 30, bots: 20, humanUnits: 2, botUnits: 18 };
  // A threshold above the bots' header score: lower it to that score.
  t.same(fixOf({ ...heavy, captcha: { mode: 'suspicious', threshold: 60 } }).fix, { captcha: { mode: 'suspicious', threshold: 55 } });
  t.equal(headerScoreOf('curl'), 55, 'the replay sends curl without accept headers');
  t.equal(headerScoreOf('empty'), 65);
  t.equal(headerScoreOf('browser'), 0);
  // Bots with browser headers: no threshold separates them from shoppers, only "always".
  const browserBots = fixOf({ ...heavy, botUa: 'browser', captcha: { mode: 'suspicious', threshold: 50 } });
  t.same(browserBots.fix, { captcha: { mode: 'always' } });
  t.match(browserBots.hint!, /header score 0/);
  // Settings that already challenge them: they can only have skipped the CAPTCHA (allow list).
  const caught = fixOf({ ...heavy, captcha: { mode: 'suspicious', threshold: 50 } });
  t.equal(caught.fix, undefined);
  t.match(caught.hint!, /"allow" list \(0 entries\)/);
  // A threshold that would catch the humans too says so.
  const h = botHint([45, 55], 45, { captcha: { mode: 'suspicious', threshold: 50 }, allow: [] });
  t.same(h.fix, { captcha: { mode: 'suspicious', threshold: 45 } });
  t.match(h.hint, /scoring 45-55 .*humans' headers score up to 45, so they would be challenged too\./);
  t.same(botHint([55], 0, { captcha: { mode: 'off', threshold: 70 }, allow: [] }).fix, { captcha: { mode: 'suspicious', threshold: 55 } });
  t.same(botHint([0], 0, { captcha: { mode: 'always', threshold: 50 }, allow: ['127.0.0.0/8'] }).fix, undefined);
});

/** The page's escaping (render.ts esc), to find a text in the HTML. */
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const count = (hay: string, needle: string) => hay.split(needle).length - 1;

/** The failing bots30-like outcome, with the checkout's whole audit (what a real replay's "audit ok" detail holds). */
function failingWithFullAudit(): ReplayData {
  const d = outcome({ humans: 30, bots: 20, humanUnits: 2, botUnits: 18 });
  d.audit = {
    ok: true, sale: 'replay-3f9c2a1b', total: 20, available: 0, reserved: 0, sold: 20, reservedCounted: 0, paidCounted: 20,
    expired: 3, cancelled: 0, failed: 1, duplicateUserOrders: 0, duplicateJtis: 0, paidWithoutOnePayment: 0, successesOnUnpaid: 0, refunds: 0,
    checks: { availableNonNegative: true, countsAddUp: true, reservedMatches: true, soldMatches: true, oneOrderPerUser: true, oneReservationPerJti: true, onePaymentPerPaidOrder: true },
  };
  return d;
}

t.test('check details: the HTML shows each one whole; the terminal clips only a long one, between two fields, with an ellipsis', async (t) => {
  const r = buildReport(failingWithFullAudit());
  const audit = r.checks.find((c) => c.name === 'audit ok')!;
  t.ok(audit.ok, 'the audit check passes');
  t.ok(audit.detail.length > TEXT_DETAIL_MAX, `the audit detail is long (${audit.detail.length} characters)`);
  t.match(audit.detail, /"onePaymentPerPaidOrder":true\}\}$/, 'and ends with the audit\'s last check');

  const html = renderHtml(r);
  t.ok(html.includes(`<th>check: audit ok</th><td>PASS (${esc(audit.detail)})</td>`), 'the HTML row holds the whole audit JSON');
  for (const c of r.checks) t.ok(html.includes(esc(c.detail)), `the HTML holds the whole detail of "${c.name}"`);

  const line = renderText(r).split('\n').find((l) => l.startsWith('check: audit ok'))!;
  const m = /PASS \((.*)… \((\d+) more characters in report\.json\)\)$/.exec(line);
  t.ok(m, `the terminal row ends with an ellipsis saying what is left out: ${line}`);
  if (m) {
    const kept = m[1]!;
    t.ok(audit.detail.startsWith(kept), 'what it shows is the start of the detail');
    t.ok(kept.length <= TEXT_DETAIL_MAX && kept.length > TEXT_DETAIL_MAX / 2, `about ${TEXT_DETAIL_MAX} characters kept (${kept.length})`);
    t.match(kept, /,$/, 'cut after a comma: between two fields, not inside a value');
    t.equal(kept.length + Number(m[2]), audit.detail.length, 'the count left out is right');
  }

  // A detail longer than the old 80-character cut but not really long stays whole in the terminal.
  const medium = 'a detail of 150 characters, ' + 'x'.repeat(150 - 28);
  t.equal(medium.length, 150);
  const r2 = { ...r, checks: r.checks.map((c) => (c.name === 'audit ok' ? { ...c, detail: medium } : c)) };
  t.match(renderText(r2), `check: audit ok`);
  t.ok(renderText(r2).split('\n').some((l) => l.startsWith('check: audit ok') && l.endsWith(`PASS (${medium})`)), 'a 150-character detail is shown whole');

  t.equal(clip('short'), 'short');
  t.equal(clip('y'.repeat(TEXT_DETAIL_MAX)), 'y'.repeat(TEXT_DETAIL_MAX), 'exactly the limit: whole');
  t.equal(clip('z'.repeat(500)), `${'z'.repeat(TEXT_DETAIL_MAX)}… (${500 - TEXT_DETAIL_MAX} more characters in report.json)`, 'no boundary: cut at the limit, and it says so');
  t.equal(clip('ab, '.repeat(100), 10), 'ab, ab,… (393 more characters in report.json)', 'cut after the last comma or space');
});

t.test('the hint of a failed check is in the HTML once, in the box under the verdict; the terminal keeps its hint row', async (t) => {
  const r = buildReport(failingWithFullAudit());
  const hint = r.checks.find((c) => !c.ok)!.hint!;
  t.ok(hint.length > 50, 'the failed check has a hint');
  const html = renderHtml(r);
  t.equal(count(html, esc(hint)), 1, 'the hint text appears exactly once');
  t.ok(html.indexOf(esc(hint)) > html.indexOf('<p class="hint">') && html.indexOf(esc(hint)) < html.indexOf('<div class="cards">'), 'in the box, before the cards');
  t.notMatch(html, /<th>hint<\/th>/, 'no hint row in the table');
  t.equal(count(renderText(r), hint), 1, 'the terminal shows it once, in its row');
  t.match(renderText(r), /\nhint\s+Set the room's captcha/);
});

t.test("the units card shows bots' share of units sold (the figure the check is about) beside their share of visitors", async (t) => {
  const card = (r: ReturnType<typeof buildReport>) => /<div class="card"><b>[^<]*<\/b><span>units to bots \/ humans[^<]*<\/span><\/div>/.exec(renderHtml(r))?.[0] ?? '';
  const bad = buildReport(outcome({ humans: 30, bots: 20, humanUnits: 2, botUnits: 18 }));
  t.equal(card(bad), '<div class="card"><b>18 / 2</b><span>units to bots / humans (bots: 90.00% of units sold, 40.00% of visitors)</span></div>');
  const good = buildReport(outcome({ humans: 30, bots: 20, humanUnits: 18, botUnits: 2 }));
  t.match(card(good), /\(bots: 10\.00% of units sold, 40\.00% of visitors\)/);
  const none = buildReport(outcome({ humans: 3, bots: 3, humanUnits: 0, botUnits: 0 }));
  t.match(card(none), /\(bots: - of units sold, 50\.00% of visitors\)/, 'nothing sold: no share');
});

t.test('the page fits a 420 px phone: charts scale to the column, long text wraps', async (t) => {
  const r = buildReport(failingWithFullAudit());
  const html = renderHtml(r);
  const svgs = html.match(/<svg [^>]*>/g) ?? [];
  t.equal(svgs.length, 3, 'three charts');
  for (const s of svgs) {
    t.match(s, /viewBox="0 0 760 240"/, 'a viewBox to scale by');
    t.notMatch(s, /\s(width|height)="/, 'no fixed width or height attribute');
  }
  t.match(html, /svg\.chart\{[^}]*width:100%[^}]*height:auto/, 'CSS: a chart is as wide as the column, its height follows');
  t.match(html, /th,td\{[^}]*overflow-wrap:anywhere/, 'CSS: table cells break long JSON anywhere');

  const dir = await mkdtemp(path.join(tmpdir(), 'replay-page-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'report.html');
  await writeFile(file, html);
  const phone = await screenshotReport(file, path.join(dir, 'phone.png'), 420);
  t.equal(phone.charts, 3);
  t.ok(phone.scrollWidth <= 420, `no sideways scroll at 420 px (content ${phone.scrollWidth} px wide)`);
  t.same(phone.requests.filter((u) => !u.startsWith('file:')), [], 'nothing fetched');
  const desktop = await screenshotReport(file, path.join(dir, 'desktop.png'), 900);
  t.ok(desktop.scrollWidth <= 900, `none at 900 px either (${desktop.scrollWidth} px)`);
});

t.test('the open marker is drawn over the bars, so an arrivals bar at second 0 does not hide it', async (t) => {
  const r = buildReport(outcome({ humans: 30, bots: 20, humanUnits: 2, botUnits: 18 }));
  t.ok(r.timeline.bins.find((b) => b.t === 0)!.arrivals > 0, 'arrivals in the bin at second 0');
  const svg = /<svg [^>]*aria-label="Arrivals and admissions[^"]*">.*?<\/svg>/s.exec(renderHtml(r))![0];
  const marker = /<line [^>]*x1="([\d.]+)"[^>]*stroke-dasharray="4 3"[^>]*\/>/.exec(svg)!;
  const label = svg.search(/>open<\/text>/);
  const mx = Number(marker[1]);
  const bars = [...svg.matchAll(/<rect x="([-\d.]+)" y="[-\d.]+" width="([\d.]+)" height="[\d.]+" fill="([^"]+)"/g)]
    .map((b) => ({ at: b.index!, x: Number(b[1]), w: Number(b[2]), fill: b[3] }));
  const arrivals = bars.filter((b) => b.fill === '#2563eb');
  t.ok(arrivals.length > 0, 'arrival bars drawn');
  const covering = bars.filter((b) => b.x < mx + 0.5 && b.x + b.w > mx - 0.5);
  t.ok(covering.some((b) => b.fill === '#2563eb'), `the arrivals bar at second 0 reaches the marker at x=${mx}`);
  for (const b of bars) {
    t.ok(b.at < marker.index!, `the marker line comes after the ${b.fill} bar at x=${b.x} (drawn over it)`);
    t.ok(b.at < label, 'and so does its label');
  }
});
