/**
 * The replay tells the truth: charts draw only what was sampled and have round ticks, bots30
 * counts add up, a visitor left waiting is reported and the run never hangs, and a product
 * whose health check does not answer is refused with the URL tried.
 */
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { lineRuns, niceTicks, svgChart } from '../../load-tests/replay/render.js';
import { makeProfile } from '../../load-tests/replay/profiles.js';
import { buildReport } from '../../load-tests/replay/report.js';
import { checkHealth, ProductDownError } from '../../load-tests/replay/api.js';
import { replay, type ReplayData } from '../../load-tests/replay/driver.js';

t.test('y ticks are round: 1, 2 or 5 times a power of ten, from 0 past the maximum', async (t) => {
  t.same(niceTicks(1169), [0, 500, 1000, 1500]);
  t.same(niceTicks(100), [0, 50, 100]);
  t.same(niceTicks(7), [0, 2, 4, 6, 8]);
  t.same(niceTicks(0), niceTicks(1), 'nothing to show: the scale of 1');
  for (const max of [1, 3, 13, 728, 999, 1001, 20000, 123456]) {
    const ticks = niceTicks(max);
    const step = ticks[1]!;
    t.ok(/^[125]0*$/.test(String(step).replace('.', '').replace(/^0+/, '')), `${max}: step ${step}`);
    t.ok(ticks[ticks.length - 1]! >= max && ticks[ticks.length - 2]! < max, `${max}: the last tick ${ticks.at(-1)} is the first at or above it`);
  }
  const svg = svgChart('q', 'queued', [{ name: 'q', color: '#000', points: [[0, 0], [1, 1169]] }]);
  const labels = [...svg.matchAll(/class="ytick"[^>]*>([^<]+)</g)].map((m) => m[1]);
  t.same(labels, ['0', '500', '1,000', '1,500']);
});

t.test('a line is drawn only between samples: none across a gap or a failed sample', async (t) => {
  const pts: [number, number | null][] = [[0, 10], [1, 20], [2, 30], [24, 5], [25, 4], [26, null], [27, 3]];
  t.same(lineRuns(pts, 3), [[[0, 10], [1, 20], [2, 30]], [[24, 5], [25, 4]], [[27, 3]]]);
  const svg = svgChart('q', 'queued', [{ name: 'q', color: '#123456', points: pts, gapSec: 3 }]);
  t.equal((svg.match(/<polyline/g) ?? []).length, 2, 'two lines, none across the 22 s without a sample');
  t.equal((svg.match(/<circle/g) ?? []).length, 1, 'a lone sample is a dot');
});

function bots30Data(): ReplayData {
  const p = makeProfile('bots30', 1000, 1);
  const open = 1_000_000;
  return {
    source: 'profile:bots30', room: 'r', sale: 'r', targets: { gateway: 'g', checkout: 'c' }, speed: 1, stock: 10, processes: 1,
    ordered: false, startedAt: open - 1000, openAt: open, endedAt: open + 30_000, arrivals: p.arrivals,
    attempts: p.arrivals.map((a, i) => ({ i, sentAt: open + a.t, latencyMs: 1, status: a.bot ? 429 : 200, outcome: a.bot ? 'rate_limited' : 'joined', ticket: i + 1, state: 'open' })),
    visitors: [...new Set(p.arrivals.filter((a) => !a.bot).map((a) => a.visitor))].map((visitor, i) => ({
      visitor, bot: false, joinedAt: open + i, joinTicket: i + 1, admittedAt: null, admittedTicket: null,
      waitEnd: i < 5 ? 'not_told' : 'sold_out', purchase: null, purchasedAt: null,
    })),
    samples: [{ at: open, queued: 700, admittedThrough: 0, state: 'open', held: false, sold: 0, available: 10 },
      { at: open + 25_000, queued: 700, admittedThrough: 0, state: 'sold_out', held: false, sold: 0, available: 0 }],
    roomDefence: { captcha: { mode: 'suspicious', threshold: 50 }, allow: [] }, saleEnd: { sold: 0 }, audit: { ok: true, sold: 0, paidCounted: 0 },
  };
}

t.test('bots30 with 1,000 visitors: 700 humans + 300 bots = 1,000 visitors, bots 30% of them', async (t) => {
  const r = buildReport(bots30Data());
  t.equal(r.meta.visitors, 1000);
  t.equal(r.bots!.humanVisitors + r.bots!.botVisitors, r.meta.visitors, 'bots + humans = visitors');
  t.equal(r.bots!.botVisitors, 300);
  t.equal(r.bots!.botShareOfVisitors, 0.3);
  t.equal(r.meta.joined, 700, 'the humans got a place, no bot did');
});

t.test('a visitor never told the outcome is reported as still waiting, and fails the check', async (t) => {
  const r = buildReport(bots30Data());
  t.same(r.answers, { followed: 700, final: 695, waiting: 5, waitingBy: { 'wait:not_told': 5 } });
  const c = r.checks.find((x) => x.name === 'every visitor got a final answer')!;
  t.equal(c.ok, false);
  t.match(c.detail, /5 of 700 visitors followed still waiting at the end \(wait:not_told 5\)/);
  t.equal(r.ok, false);
  t.same(r.timeline.samples.map((s) => s.t), [0, 25], 'the samples as taken');
});

async function server(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(s.address() as net.AddressInfo).port}`, close: () => new Promise((r) => { s.closeAllConnections(); s.close(() => r()); }) };
}

t.test('a product whose health check does not answer is refused, naming the URL tried', async (t) => {
  const up = await server((_q, res) => res.end('{}'));
  const sick = await server((_q, res) => { res.statusCode = 503; res.end('{"error":"unavailable"}'); });
  const dead = await server(() => {});
  const deadUrl = dead.url;
  await dead.close();
  t.teardown(async () => { await up.close(); await sick.close(); });
  await t.rejects(checkHealth({ gateway: deadUrl, checkout: up.url }), new RegExp(`gateway's health check ${deadUrl}/healthz did not answer \\(ECONNREFUSED\\)`));
  await t.rejects(checkHealth({ gateway: up.url, checkout: sick.url }), new RegExp(`checkout's health check ${sick.url}/healthz answered HTTP 503 unavailable`));
  await t.resolves(checkHealth({ gateway: up.url, checkout: up.url }));
  const p = makeProfile('spike', 10, 1);
  await t.rejects(replay({ targets: { gateway: deadUrl, checkout: up.url, adminToken: 'x' }, source: 'p', arrivals: p.arrivals, open: p.open, stock: 1, progress: false, log: () => {} }), ProductDownError);
});

t.test('a room sold out whose gateway never tells its waiters: the run ends after the grace, each reported not_told', async (t) => {
  // A gateway that gives places and holds sockets open, never sending a word on them, while its
  // public state says sold_out: a product that leaves its visitors hanging.
  const { WebSocketServer } = await import('ws');
  let n = 0;
  const gw = await server((q, res) => {
    res.setHeader('content-type', 'application/json');
    if (q.url?.endsWith('/join')) return res.end(JSON.stringify({ ticket: ++n, position: n, state: 'sold_out', visitorId: `v${n}` }));
    if (q.url?.endsWith('/claim')) { res.statusCode = 409; return res.end('{"error":"not_yet"}'); }
    if (q.url?.startsWith('/api/rooms/')) return res.end(JSON.stringify({ state: 'sold_out', queued: n, admittedThrough: 0, held: false }));
    res.end(JSON.stringify({ captcha: { mode: 'off', threshold: 50 }, allow: [] }));
  });
  const wss = new WebSocketServer({ noServer: true });
  const co = await server((_q, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ ok: true, sold: 0, paidCounted: 0 })); });
  t.teardown(async () => { wss.close(); await gw.close(); await co.close(); });
  const p = makeProfile('spike', 20, 1);
  const started = Date.now();
  const d = await replay({ targets: { gateway: gw.url, checkout: co.url, adminToken: 'x' }, source: 'p', arrivals: p.arrivals, open: p.open, stock: 1,
    timeoutSec: 600, answerGraceSec: 2, progress: false, log: () => {} });
  t.ok(Date.now() - started < 120_000, `ended long before the 600 s timeout (${Math.round((Date.now() - started) / 1000)} s)`);
  t.ok(d.visitors.length > 0 && d.visitors.every((v) => v.waitEnd === 'not_told'), 'every waiter reported not_told');
  const r = buildReport(d);
  t.equal(r.answers.waiting, d.visitors.length);
  t.equal(r.checks.find((c) => c.name === 'every visitor got a final answer')!.ok, false);
});
