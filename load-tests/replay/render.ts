/**
 * The report as a terminal table and as one self-contained HTML page (charts are inline SVG:
 * no script, no CDN), and writing both plus report.json to a directory.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Report } from './report.js';

const fmt = (v: unknown): string =>
  v === null || v === undefined ? '-' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(v < 1 ? 4 : 2)) : String(v);

/** Longest check detail the terminal shows whole; the HTML and report.json always show all of it. */
export const TEXT_DETAIL_MAX = 200;

/**
 * `s` whole when it is at most `max` characters; else cut after the last comma or space in its
 * first `max` (so a JSON detail ends between two fields, not inside a value) and followed by an
 * ellipsis that says how much is left out and where it is.
 */
export function clip(s: string, max = TEXT_DETAIL_MAX): string {
  if (s.length <= max) return s;
  const head = s.slice(0, max);
  const at = Math.max(head.lastIndexOf(','), head.lastIndexOf(' '));
  const kept = (at >= max / 2 ? head.slice(0, at + 1) : head).trimEnd();
  return `${kept}… (${s.length - kept.length} more characters in report.json)`;
}

/**
 * The report as [label, value] rows. `detail` shapes a check's detail (the terminal clips it,
 * the HTML wraps it whole); `hints` adds a row under each failed check with its hint (the HTML
 * shows hints in a box under the verdict instead).
 */
function rows(r: Report, detail: (s: string) => string, hints: boolean): [string, string][] {
  const out: [string, string][] = [
    ['source', r.meta.source],
    ['attempts / visitors', `${r.meta.attempts} attempts from ${r.meta.visitors} visitors${r.bots ? ` (${r.bots.humanVisitors} humans, ${r.bots.botVisitors} bots)` : ''}; ${r.meta.joined} got a place`],
    ['outcomes', Object.entries(r.outcomes).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['join latency p50 / p95 / p99 (ms)', `${fmt(r.latencyMs.p50)} / ${fmt(r.latencyMs.p95)} / ${fmt(r.latencyMs.p99)}`],
    ['fairness: Kendall tau (after open)', `${fmt(r.fairness.tau)} over ${r.fairness.n} admitted`],
    ['fairness: overtakes', `${r.fairness.overtakes} (${r.fairness.discordant} out of order, ${r.fairness.skipped} skipped)`],
  ];
  if (r.bots) {
    const b = r.bots;
    out.push(['bots: attempts stopped', `${b.botAttemptsStopped} of ${b.botAttempts} (${b.botVisitorsAdmitted} of ${b.botVisitors} bot visitors admitted, ${b.botUnits} units)`]);
    out.push(['humans challenged / limited / blocked', `${b.humansChallenged} / ${b.humansLimited} / ${b.humansBlocked} of ${b.humanVisitors}`]);
    out.push(['false-positive rate', `${(b.falsePositiveRate * 100).toFixed(2)}%`]);
    out.push(['units to bots / humans', `${b.botUnits} / ${b.humanUnits} (bots: ${share(b.botShareOfUnits)} of units, ${share(b.botShareOfVisitors)} of visitors)`]);
  }
  out.push(['units sold / stock', `${fmt(r.sales.sold)} / ${r.sales.stock} (${r.sales.purchases} purchases seen, ${r.sales.admitted} admitted)`]);
  out.push(['sold out after open (s)', fmt(r.sales.soldOutAfterSec)]);
  const ad = r.admission;
  out.push(['admission: overbook / claimSeconds', `${fmt(ad.overbook)} / ${fmt(ad.claimSeconds)}${ad.ghostShare ? `; ${pctOf(ad.ghostShare)} of visitors walk away once admitted (${ad.walkedAway} did)` : ''}`]);
  out.push(['admitted per unit sold', `${fmt(ad.admittedPerUnitSold)} (${ad.admitted} admitted for ${fmt(r.sales.sold)} units)`]);
  out.push(['admitted shoppers who met sold_out', `${ad.metSoldOut} (${ad.promptMetSoldOut} of them had reserved within claimSeconds)`]);
  const c = r.calibration;
  out.push(['chance shown vs got a unit', `${c.withChance} visitors shown a chance; ${c.withoutChance} never shown one (${c.withoutChanceGotUnit} of them got a unit)`]);
  for (const b of c.buckets) {
    out.push([`  chance ${pctOf(b.from)}-${pctOf(b.to)}`, b.visitors ? `shown ${pctOf(b.shownMean!)} on average, ${pctOf(b.actual!)} got a unit (${b.gotUnit} of ${b.visitors})` : 'nobody']);
  }
  const f = r.fairnessReport;
  if (f) out.push(['fairness report', f.published ? `${f.url} (checked below)` : `${f.url}: not published (${f.status} ${f.error})`]);
  out.push(['final answers', `${r.answers.final} of ${r.answers.followed} visitors followed` +
    (r.answers.waiting ? `; ${r.answers.waiting} still waiting at the end (${Object.entries(r.answers.waitingBy).map(([k, v]) => `${k} ${v}`).join(', ')})` : '')]);
  if (r.replay) {
    out.push(['outcomes recorded', Object.entries(r.replay.recordedOutcomes).map(([k, v]) => `${k} ${v}`).join(', ')]);
    out.push(['ticket order vs recording', `tau ${fmt(r.replay.orderTau)}, ${r.replay.orderDiscordant} discordant pairs among ${r.replay.orderPairs} joins`]);
  }
  out.push(['audit', r.audit.ok === true ? 'ok' : `FAILED ${JSON.stringify(r.audit)}`]);
  for (const c of r.checks) {
    out.push([`check: ${c.name}`, `${c.ok ? 'PASS' : 'FAIL'} (${detail(c.detail)})`]);
    if (hints && !c.ok && c.hint) out.push(['hint', c.hint]);
  }
  return out;
}

const pctOf = (x: number) => `${Math.round(x * 1000) / 10}%`;
const share = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(2)}%`);

export function verdict(r: Report): string {
  return r.ok ? 'All checks passed' : `Some checks FAILED: ${r.checks.filter((c) => !c.ok).map((c) => c.name).join('; ')}`;
}

export function renderText(r: Report): string {
  const rs = rows(r, clip, true);
  rs.push(['verdict', verdict(r)]);
  const w = Math.max(...rs.map(([k]) => k.length));
  return rs.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

interface Series {
  name: string;
  color: string;
  points: [number, number | null][];
  bars?: boolean;
  /**
   * A line series is broken wherever two neighbouring points are more than this many seconds
   * apart (and at every null): no line is drawn through a stretch with no sample in it.
   */
  gapSec?: number;
}

/**
 * Round y-axis ticks for values up to `max`: a step of 1, 2 or 5 times a power of ten, about
 * four steps, from 0 to the first tick at or above `max`.
 */
export function niceTicks(max: number, steps = 4): number[] {
  const top = max > 0 && Number.isFinite(max) ? max : 1;
  const raw = top / steps;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((k) => k * pow >= raw * (1 - 1e-9)) ?? 10) * pow;
  const n = Math.max(1, Math.ceil(top / step - 1e-9));
  // Multiply, never add, so a tick of 0.3 is 0.3 and not 0.30000000000000004.
  return Array.from({ length: n + 1 }, (_, k) => Number((k * step).toPrecision(12)));
}

/**
 * The runs of a line series that may be joined: consecutive non-null points no more than
 * `gapSec` apart. A run of one point is a lone sample (drawn as a dot).
 */
export function lineRuns(points: [number, number | null][], gapSec = Infinity): [number, number][][] {
  const runs: [number, number][][] = [];
  let cur: [number, number][] = [];
  for (const [x, y] of points) {
    const prev = cur[cur.length - 1];
    if (y === null || (prev && x - prev[0] > gapSec)) {
      if (cur.length) runs.push(cur);
      cur = [];
    }
    if (y !== null) cur.push([x, y]);
  }
  if (cur.length) runs.push(cur);
  return runs;
}

const label = (v: number) => (Number.isInteger(v) ? v.toLocaleString('en-US') : String(v));

/**
 * A small line/bar chart: x is seconds from open (a dashed line marks open). `width` and
 * `height` are its viewBox: the page's CSS scales it to the column (never wider than `width`).
 */
export function svgChart(title: string, yLabel: string, series: Series[], width = 760, height = 240): string {
  const m = { l: 56, r: 16, t: 28, b: 36 };
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]).filter((v): v is number => v !== null));
  const x0 = Math.min(0, ...xs);
  const x1 = Math.max(x0 + 1, ...xs) + 1;
  const ticks = niceTicks(Math.max(1, ...ys));
  const y1 = ticks[ticks.length - 1]!;
  const X = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (width - m.l - m.r);
  const Y = (y: number) => height - m.b - (y / y1) * (height - m.t - m.b);
  const parts: string[] = [];
  for (const v of ticks) {
    parts.push(`<line x1="${m.l}" x2="${width - m.r}" y1="${Y(v)}" y2="${Y(v)}" stroke="#e5e7eb"/>`);
    parts.push(`<text class="ytick" x="${m.l - 6}" y="${Y(v) + 4}" text-anchor="end" font-size="11" fill="#6b7280">${label(v)}</text>`);
  }
  const step = Math.max(1, Math.ceil((x1 - x0) / 10));
  for (let x = Math.ceil(x0 / step) * step; x <= x1; x += step) {
    parts.push(`<text x="${X(x)}" y="${height - m.b + 16}" text-anchor="middle" font-size="11" fill="#6b7280">${x}s</text>`);
  }
  const bw = Math.max(1, ((width - m.l - m.r) / Math.max(1, xs.length / Math.max(1, series.length))) * 0.8);
  series.forEach((s, si) => {
    if (s.bars) {
      for (const [x, y] of s.points) {
        if (y === null || y === 0) continue;
        const off = series.filter((q) => q.bars).length > 1 ? (si === 0 ? -bw / 4 : bw / 4) : 0;
        parts.push(`<rect x="${X(x) - bw / 4 + off}" y="${Y(y)}" width="${Math.max(1, bw / 2)}" height="${Y(0) - Y(y)}" fill="${s.color}" opacity="0.85"/>`);
      }
    } else {
      for (const run of lineRuns(s.points, s.gapSec)) {
        if (run.length === 1) {
          parts.push(`<circle cx="${X(run[0]![0]).toFixed(1)}" cy="${Y(run[0]![1]).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
        } else {
          parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${run.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ')}"/>`);
        }
      }
    }
  });
  // The open marker after the data, so a bar at second 0 does not hide it; its label has a
  // white halo to stay readable over a bar.
  parts.push(`<line class="open" x1="${X(0)}" x2="${X(0)}" y1="${m.t}" y2="${height - m.b}" stroke="#111827" stroke-dasharray="4 3"/>`);
  parts.push(`<text x="${X(0) + 4}" y="${m.t + 10}" font-size="11" fill="#111827" stroke="#fff" stroke-width="3" paint-order="stroke">open</text>`);
  const legend = series.map((s, i) => `<rect x="${m.l + i * 150}" y="8" width="10" height="10" fill="${s.color}"/><text x="${m.l + 14 + i * 150}" y="17" font-size="12">${esc(s.name)}</text>`).join('');
  return `<figure><figcaption>${esc(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 ${width} ${height}" style="max-width:${width}px" role="img" aria-label="${esc(title)}">${legend}${parts.join('')}<text x="12" y="${height / 2}" font-size="11" fill="#6b7280" transform="rotate(-90 12 ${height / 2})" text-anchor="middle">${esc(yLabel)}</text></svg></figure>`;
}

export function renderHtml(r: Report): string {
  const b = r.timeline.bins;
  const smp = r.timeline.samples;
  const charts = [
    svgChart(`Arrivals and admissions per ${r.timeline.binSec} s`, 'per bin', [
      { name: 'join attempts', color: '#2563eb', points: b.map((x) => [x.t, x.arrivals]), bars: true },
      { name: 'admissions', color: '#16a34a', points: b.map((x) => [x.t, x.admissions]), bars: true },
    ]),
    svgChart('Queue length (gateway, sampled each second)', 'queued', [{ name: 'queued', color: '#9333ea', points: smp.map((x) => [x.t, x.queued]), gapSec: r.timeline.sampleGapSec }]),
    svgChart(`Units sold (stock ${r.sales.stock})`, 'units', [
      { name: 'sold', color: '#ea580c', points: smp.map((x) => [x.t, x.sold]), gapSec: r.timeline.sampleGapSec },
      { name: 'stock', color: '#9ca3af', points: b.length ? [[b[0]!.t, r.sales.stock], [b[b.length - 1]!.t, r.sales.stock]] : [] },
    ]),
  ];
  const hints = r.checks.filter((c) => !c.ok && c.hint).map((c) => `<p class="hint"><b>${esc(c.name)}:</b> ${esc(c.hint!)}</p>`).join('\n');
  const table = rows(r, (d) => d, false).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drop-day replay: ${esc(r.meta.source)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:820px;color:#111827;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}.sub{color:#6b7280;margin:0 0 16px}
.verdict{display:inline-block;padding:4px 10px;border-radius:6px;font-weight:600;margin-bottom:16px}
.ok{background:#dcfce7;color:#166534}.bad{background:#fee2e2;color:#991b1b}
table{border-collapse:collapse;width:100%;margin:8px 0 24px}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top;overflow-wrap:anywhere}
th{font-weight:500;color:#374151;width:38%}figure{margin:0 0 20px}figcaption{font-weight:600;margin-bottom:4px}
svg.chart{display:block;width:100%;height:auto}.sub,.verdict,.hint,.card{overflow-wrap:anywhere}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:16px}.card{border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}.card span{color:#6b7280;font-size:12px}
.hint{background:#fef3c7;border-left:4px solid #d97706;padding:8px 12px;margin:0 0 16px}
</style></head><body>
<h1>Drop-day replay report</h1>
<p class="sub">${esc(r.meta.source)} · room ${esc(r.meta.room)} · ${r.meta.speed}× speed · opened ${esc(r.meta.openAt)} · ${r.meta.durationSec} s${r.fairnessReport ? ` · <a href="${esc(r.fairnessReport.url)}">the room's signed fairness report</a>` : ''}</p>
<div class="verdict ${r.ok ? 'ok' : 'bad'}">${esc(verdict(r))}</div>
${hints}
<div class="cards">
<div class="card"><b>${fmt(r.sales.sold)} / ${r.sales.stock}</b><span>units sold / stock</span></div>
<div class="card"><b>${fmt(r.fairness.tau)}</b><span>Kendall tau over ${r.fairness.n} admitted after open</span></div>
<div class="card"><b>${r.fairness.overtakes}</b><span>overtakes</span></div>
<div class="card"><b>${fmt(r.latencyMs.p99)} ms</b><span>join p99</span></div>
<div class="card"><b>${r.audit.ok === true ? 'ok' : 'FAILED'}</b><span>audit</span></div>
${r.bots ? `<div class="card"><b>${r.bots.botAttemptsStopped} / ${r.bots.botAttempts}</b><span>bot attempts stopped (${r.bots.botUnits} units to bots)</span></div>
<div class="card"><b>${(r.bots.falsePositiveRate * 100).toFixed(2)}%</b><span>humans challenged or limited</span></div>
<div class="card"><b>${r.bots.botUnits} / ${r.bots.humanUnits}</b><span>units to bots / humans (bots: ${share(r.bots.botShareOfUnits)} of units sold, ${share(r.bots.botShareOfVisitors)} of visitors)</span></div>` : ''}
</div>
${charts.join('\n')}
<table>${table}</table>
</body></html>
`;
}

export async function writeReport(dir: string, r: Report): Promise<{ json: string; html: string }> {
  await mkdir(dir, { recursive: true });
  const json = path.join(dir, 'report.json');
  const html = path.join(dir, 'report.html');
  await writeFile(json, JSON.stringify(r, null, 2) + '\n');
  await writeFile(html, renderHtml(r));
  return { json, html };
}
