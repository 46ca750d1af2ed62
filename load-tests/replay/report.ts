/**
 * The figures of a replay, computed from what the driver saw (ReplayData): outcome counts,
 * join latency percentiles, arrivals/admissions/queue/sales over time, the fairness figure,
 * the bot-defence figures (when the arrivals say who is a bot), units sold vs stock, the audit,
 * and, for a recording, how the replay compares with what was recorded.
 *
 * Fairness: among visitors whose first successful join came after open (they got a ticket at
 * once; pre-queue places are drawn at random on purpose), arrival order is the driver's send
 * time and admission order is the `ticket` claim of the admission token (the gateway admits in
 * ticket order). tau is Kendall's tau-b between the two; overtakes are the discordant pairs plus
 * the pairs where an earlier arrival was never admitted while a later one was.
 *
 * Admission that knows the stock (docs/api.md section 7): admissions per unit sold, admitted
 * shoppers told `sold_out` at the till (and how many of them had reserved within claimSeconds:
 * with overbook 1 the contract promises those a unit, a check), the time from open to sold out.
 *
 * Calibration of `chance`: each visitor's last chance shown (position messages) before its wait
 * ended, in buckets; per bucket the mean shown against the fraction who got a unit. Ghosts (they
 * walk away once admitted, by design) and visitors left without an answer are not counted.
 *
 * The room's fairness report (GET /api/rooms/:room/report, docs/draw.md), fetched at the end, is
 * linked and checked against the replay's own counts: entrants (visitors who got a place: one per
 * visitor keeping its cookie, one per join of those that keep none), admissions, units bought,
 * and the `chance` table bucket by bucket (every followed visitor shown a chance, ghosts and
 * unanswered ones included, since the gateway cannot tell them apart). A mismatch is a failed
 * check. A room that never sold out or closed has no report yet: linked, not checked.
 *
 * Who got the units (labelled arrivals only): the check fails when bots' share of the units
 * sold (purchases the shoppers saw) exceeds `maxBotShare` (default 10%). Not "their share of
 * arrivals": a room with no defence at all gives bots about that share, more when they come
 * first, so that bar would pass a room that stops nobody. A failed check carries one hint, the
 * room setting that would have challenged every bot that bought (see botHint).
 */
import { CHANCE_BUCKETS, chanceBucket } from '../../shared/chance-buckets.js';
import { kendallTau } from '../../shared/kendall.js';
import { headerScore } from '../../waiting-room/defence/score.js';
import type { RoomConfig } from '../../waiting-room/room-config.js';
import type { ReplayData } from './driver.js';
import type { UaClass } from './ndjson.js';
import { headersFor } from './shard.js';

/** Default of `--max-bot-share`: the largest share of units sold that bots may get. */
export const DEFAULT_MAX_BOT_SHARE = 0.1;

export interface ReportOptions {
  /** The largest share (0..1) of units sold that bots may get before the check fails. */
  maxBotShare?: number;
}

export interface Percentiles {
  n: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
}

export interface TimelineBin {
  /** Seconds from open (start of the bin). */
  t: number;
  arrivals: number;
  admissions: number;
  queued: number | null;
  sold: number | null;
}

/** One sample of the room and the sale (seconds from open); a field is null when its request failed. */
export interface TimelineSample {
  t: number;
  queued: number | null;
  sold: number | null;
}

/**
 * The driver samples about once a second: neighbouring samples further apart than this have a
 * stretch with no sample between them, and the charts draw no line across it.
 */
export const SAMPLE_GAP_SEC = 3;

/** How a visitor's wait may end with an answer from the product (anything else: still waiting). */
export const FINAL_WAIT_ENDS: ReadonlySet<string> = new Set(['admitted', 'sold_out', 'closed', 'not_in_queue']);

/**
 * A visitor the product left without a final answer: its wait did not end in one (timed out,
 * never told the room sold out, its socket failed and claiming never answered), or it was
 * admitted and its purchase never settled.
 */
export function unanswered(v: ReplayData['visitors'][number]): boolean {
  if (!FINAL_WAIT_ENDS.has(v.waitEnd)) return true;
  if (v.waitEnd !== 'admitted') return false;
  return v.purchase === null || v.purchase === 'purchase:timeout' || v.purchase.startsWith('network:');
}

/** The buckets of the calibration table (the gateway's fairness report uses the same ones). */
export { CHANCE_BUCKETS };

export interface CalibrationBucket {
  from: number;
  to: number;
  /** Visitors whose last chance shown fell in [from, to) ([from, to] for the last bucket). */
  visitors: number;
  /** The mean of those chances; null when the bucket is empty. */
  shownMean: number | null;
  /** How many of them got a unit (bought). */
  gotUnit: number;
  /** gotUnit / visitors; null when the bucket is empty. */
  actual: number | null;
}

export interface Calibration {
  buckets: CalibrationBucket[];
  /** Visitors counted: shown a chance, not ghosts, with a final answer (= the buckets' visitors summed). */
  withChance: number;
  /** Visitors not ghosts and with a final answer who were never shown a number (null until the room has seen an outcome). */
  withoutChance: number;
  /** Of those never shown a number, how many got a unit. */
  withoutChanceGotUnit: number;
}

/** The calibration table of `chance` (see the module comment). */
export function calibration(visitors: ReplayData['visitors']): Calibration {
  const counted = visitors.filter((v) => !v.ghost && !unanswered(v));
  const shown = counted.filter((v) => typeof v.chance === 'number');
  const without = counted.filter((v) => typeof v.chance !== 'number');
  return {
    buckets: chanceBuckets(shown), withChance: shown.length, withoutChance: without.length,
    withoutChanceGotUnit: without.filter((v) => v.purchase === 'success').length,
  };
}

/** The buckets over visitors shown a chance. */
function chanceBuckets(shown: ReplayData['visitors']): CalibrationBucket[] {
  return CHANCE_BUCKETS.map(([from, to], k): CalibrationBucket => {
    const inB = shown.filter((v) => chanceBucket(v.chance!) === k);
    const got = inB.filter((v) => v.purchase === 'success').length;
    const mean = inB.length ? inB.reduce((sum, v) => sum + v.chance!, 0) / inB.length : null;
    return {
      from, to, visitors: inB.length, shownMean: mean === null ? null : Math.round(mean * 1000) / 1000,
      gotUnit: got, actual: inB.length ? Math.round((got / inB.length) * 10000) / 10000 : null,
    };
  });
}

/** The room's fairness report as the replay fetched it, and the replay's own counts to check it against. */
export interface FairnessReportCheck {
  url: string;
  /** The report was published (200); otherwise `status` and `error` say why not (409 not_yet: the room is not over). */
  published: boolean;
  status: number;
  error: string | null;
  /** [the report's figure, the replay's own] per count compared. */
  entrants: [number | null, number];
  admitted: [number | null, number];
  unitsSold: [number | null, number];
  /** Per bucket: visitors and gotUnit, the report's and the replay's. */
  chance: { from: number; to: number; visitors: [number | null, number]; gotUnit: [number | null, number] }[];
}

/** Compare the fetched fairness report with the replay's own counts (see the module comment). */
export function checkFairnessReport(d: ReplayData, admitted: number, purchases: number): { cmp: FairnessReportCheck | null; checks: Check[] } {
  const f = d.fairnessReport;
  if (!f) return { cmp: null, checks: [] };
  const rep = f.status === 200 ? f.body?.report : null;
  const num = (x: unknown) => (typeof x === 'number' ? x : null);
  const noCookieJoins = d.attempts.filter((a) => a.outcome === 'joined' && d.arrivals[a.i]!.noCookie).length;
  const cookieJoined = new Set(d.attempts.filter((a) => a.outcome === 'joined' && !d.arrivals[a.i]!.noCookie).map((a) => d.arrivals[a.i]!.visitor)).size;
  const mine = chanceBuckets(d.visitors.filter((v) => typeof v.chance === 'number'));
  const theirs: any[] = Array.isArray(rep?.chance?.buckets) ? rep.chance.buckets : [];
  const cmp: FairnessReportCheck = {
    url: f.url, published: !!rep, status: f.status, error: rep ? null : String(f.body?.error ?? f.body?.message ?? 'no report'),
    entrants: [num(rep?.entrants?.total), cookieJoined + noCookieJoins],
    admitted: [num(rep?.admitted), admitted],
    unitsSold: [num(rep?.units?.sold), purchases],
    chance: mine.map((b, k) => ({ from: b.from, to: b.to, visitors: [num(theirs[k]?.visitors), b.visitors], gotUnit: [num(theirs[k]?.gotUnit), b.gotUnit] })),
  };
  // Not over yet (409 not_yet): nothing to check. Anything else unanswered is a failure.
  if (!rep) return { cmp, checks: f.status === 409 ? [] : [{ name: 'fairness report published', ok: false, detail: `${f.url}: ${f.status} ${cmp.error}` }] };
  const same = (name: string, [r, m]: [number | null, number], what: string): Check => ({ name: `fairness report: ${name}`, ok: r === m, detail: `${r} in the report, ${m} ${what}` });
  // A join the gateway applied but whose answer never came back (the connection failed, a 5xx)
  // is an entrant the replay cannot know of: at most that many more in the report.
  const unanswered = d.attempts.filter((a) => a.status === 0 || a.status >= 500).length;
  const [er, em] = cmp.entrants;
  const entrants: Check = {
    name: 'fairness report: entrants',
    ok: er !== null && er >= em && er <= em + unanswered,
    detail: `${er} in the report, ${em} visitors got a place in the replay` + (unanswered ? ` (and ${unanswered} join attempts got no answer or a 5xx: up to that many more may have been placed)` : ''),
  };
  const off = cmp.chance.filter((b) => b.visitors[0] !== b.visitors[1] || b.gotUnit[0] !== b.gotUnit[1]);
  return {
    cmp,
    checks: [
      entrants,
      same('admitted', cmp.admitted, 'admitted in the replay'),
      same('units sold', cmp.unitsSold, 'purchases the shoppers saw'),
      {
        name: 'fairness report: chance shown vs got a unit',
        ok: off.length === 0,
        detail: off.length === 0
          ? `every bucket as the replay's visitors saw it (${mine.reduce((n, b) => n + b.visitors, 0)} shown a chance)`
          : off.map((b) => `${b.from}-${b.to}: report ${b.visitors[0]} visitors / ${b.gotUnit[0]} got a unit, replay ${b.visitors[1]} / ${b.gotUnit[1]}`).join('; '),
      },
    ],
  };
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** What to change when the check fails, in words. */
  hint?: string;
  /** The same as a room-config patch (PUT /admin/rooms/:room, or --room-config), when there is one. */
  fix?: Record<string, unknown>;
}

export interface Report {
  meta: {
    source: string; room: string; sale: string; gateway: string; checkout: string; speed: number;
    processes: number; ordered: boolean; startedAt: string; openAt: string; durationSec: number;
    attempts: number;
    /** Distinct visitors of the arrivals (a profile's or a recording's), bots and humans alike. */
    visitors: number;
    /** Of those, visitors with at least one join answered 200 (a place in the queue). */
    joined: number;
    /** Visitors the driver followed to a final answer (those that keep a cookie and joined). */
    followed: number;
  };
  outcomes: Record<string, number>;
  latencyMs: Percentiles;
  /**
   * `bins` count arrivals and admissions; `samples` are the room and sale as sampled (the
   * queue and units-sold charts draw these, broken where two are more than `sampleGapSec` apart).
   */
  timeline: { binSec: number; bins: TimelineBin[]; samples: TimelineSample[]; sampleGapSec: number };
  fairness: { n: number; tau: number | null; overtakes: number; discordant: number; skipped: number };
  bots: null | {
    botVisitors: number; botAttempts: number; botAttemptsStopped: number; botVisitorsAdmitted: number; botUnits: number;
    humanVisitors: number; humansChallenged: number; humansLimited: number; humansBlocked: number; falsePositiveRate: number;
    /** Units (purchases seen) to humans; botUnits + humanUnits = purchases. */
    humanUnits: number;
    /** botUnits / purchases, null when nothing was sold. */
    botShareOfUnits: number | null;
    /** botVisitors / all visitors (a cookie-less join is a visitor of its own, as the gateway sees it). */
    botShareOfVisitors: number;
    /** The check's limit on botShareOfUnits. */
    maxBotShare: number;
  };
  sales: { stock: number; sold: number | null; purchases: number; admitted: number; failures: Record<string, number>; soldOutAfterSec: number | null };
  /** Stock-aware admission (docs/api.md section 7): what admission cost at the till. */
  admission: {
    /** The room's overbook and claimSeconds; null when the data does not say. */
    overbook: number | null;
    claimSeconds: number | null;
    /** Share of followed visitors who walk away once admitted (the replay's --ghosts). */
    ghostShare: number;
    /** Admissions the room made (its last admittedThrough, or the visitors seen admitted). */
    admitted: number;
    /** admitted / units sold; null when nothing was sold. */
    admittedPerUnitSold: number | null;
    /** Admitted shoppers whose reservation was answered sold_out. */
    metSoldOut: number;
    /** Of those, the ones who sent their reservation within claimSeconds of admission. */
    promptMetSoldOut: number;
    /** Admitted visitors who walked away (ghosts). */
    walkedAway: number;
    /** Seconds from open to the first sample of the room sold out; null when it never was. */
    soldOutAfterSec: number | null;
  };
  calibration: Calibration;
  /** The room's fairness report against the replay's own counts (null: not fetched). */
  fairnessReport: FairnessReportCheck | null;
  /** Visitors followed to the end: with a final answer, and still waiting at the end (by how their wait ended). */
  answers: { followed: number; final: number; waiting: number; waitingBy: Record<string, number> };
  audit: Record<string, unknown>;
  replay: null | { recordedOutcomes: Record<string, number>; orderTau: number | null; orderPairs: number; orderDiscordant: number };
  checks: Check[];
  /** Every check passed. */
  ok: boolean;
}

export function percentiles(values: number[]): Percentiles {
  if (!values.length) return { n: 0, p50: null, p95: null, p99: null, max: null };
  const s = Float64Array.from(values).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  const r = (x: number) => Math.round(x * 100) / 100;
  return { n: s.length, p50: r(at(0.5)), p95: r(at(0.95)), p99: r(at(0.99)), max: r(s[s.length - 1]!) };
}

const count = (xs: string[]) => xs.reduce<Record<string, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {});

/** tau and overtakes for arrival times `x` and admission ranks `y` (null = never admitted). */
export function fairness(x: number[], y: (number | null)[]): Report['fairness'] {
  const idx = x.map((_, i) => i).sort((a, b) => x[a]! - x[b]!);
  const ax: number[] = [];
  const ay: number[] = [];
  let skipped = 0;
  let notAdmittedSoFar = 0;
  for (const i of idx) {
    const yi = y[i];
    if (yi === null || yi === undefined) notAdmittedSoFar++;
    else {
      skipped += notAdmittedSoFar;
      ax.push(x[i]!);
      ay.push(yi);
    }
  }
  const k = kendallTau(ax, ay);
  const r = (v: number | null) => (v === null ? null : Math.round(v * 10000) / 10000);
  return { n: k.n, tau: r(k.tau), discordant: k.discordant, skipped, overtakes: k.discordant + skipped };
}

const STOPPED = new Set(['rate_limited', 'captcha_required', 'captcha_failed', 'blocked']);

/** The header part of the suspicion score the gateway gives a replayed join of this class. */
export function headerScoreOf(ua: UaClass): number {
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries(headersFor(ua))) if (v !== undefined) h[k] = v;
  return headerScore(h);
}

/**
 * The hint of a failed bot-share check: the room setting that would have challenged every bot
 * that got a unit (the replay never solves a CAPTCHA). `botScores` are the header scores of those
 * bots; the join script only adds velocity to them, so `suspicious` with a threshold at or under
 * the lowest catches each one. A bot scoring 0 looks like a browser: only `always` catches it.
 */
export function botHint(
  botScores: number[], humanScoreMax: number | null, room: Pick<RoomConfig, 'captcha' | 'allow'>,
): { hint: string; fix?: Record<string, unknown> } {
  const lo = Math.min(...botScores);
  const hi = Math.max(...botScores);
  const had = `the room had captcha ${JSON.stringify(room.captcha)}`;
  const how = `(operator console or PUT /admin/rooms/:room; for a replay, the --room-config file)`;
  const { mode, threshold } = room.captcha;
  if (lo === 0 && mode !== 'always') {
    const captcha = { mode: 'always' };
    return {
      fix: { captcha },
      hint: `Set the room's captcha to ${JSON.stringify(captcha)} ${how}: bots that got units sent browser-like headers (header score 0), ` +
        `which no threshold tells from a shopper's; "always" challenges every join without a CAPTCHA pass (remembered 30 minutes per visitor). ` +
        `A replay solves no CAPTCHA, so a replay with it sells to no one; ${had}.`,
    };
  }
  if (mode === 'off' || (mode === 'suspicious' && threshold > lo)) {
    const captcha = { mode: 'suspicious', threshold: mode === 'off' ? Math.min(threshold, lo) : lo };
    const humans = humanScoreMax === null ? '' : humanScoreMax >= captcha.threshold
      ? `; humans' headers score up to ${humanScoreMax}, so they would be challenged too`
      : `; humans' headers scored at most ${humanScoreMax}`;
    return {
      fix: { captcha },
      hint: `Set the room's captcha to ${JSON.stringify(captcha)} ${how}: the bots that got units sent headers scoring ` +
        `${lo === hi ? lo : `${lo}-${hi}`} on their own (waiting-room/defence/score.ts; the join script's velocity only adds), ` +
        `so each would have had to solve a CAPTCHA; ${had}${humans}.`,
    };
  }
  return {
    hint: `The room's captcha ${JSON.stringify(room.captcha)} challenges these bots' headers (score ${lo} or more), yet they joined without ` +
      `solving one (a replay never does): allow-listed addresses skip buckets and CAPTCHA; check the room's "allow" list (${room.allow.length} entries).`,
  };
}

const share = (part: number, whole: number) => (whole ? Math.round((part / whole) * 10000) / 10000 : null);
const pct = (x: number) => `${(x * 100).toFixed(2).replace(/\.?0+$/, '')}%`;

function botShareCheck(d: ReplayData, b: NonNullable<Report['bots']>, buyers: ReplayData['visitors']): Check {
  const units = b.botUnits + b.humanUnits;
  const check: Check = {
    name: `bots' share of units sold <= ${pct(b.maxBotShare)}`,
    ok: b.botShareOfUnits === null || b.botShareOfUnits <= b.maxBotShare,
    detail: b.botShareOfUnits === null ? 'no unit sold' : `${b.botUnits} of ${units} units to bots (${pct(b.botShareOfUnits)})`,
  };
  if (!check.ok) {
    const ua = new Map<string, UaClass>();
    for (const a of d.arrivals) if (!ua.has(a.visitor)) ua.set(a.visitor, a.ua);
    const botScores = buyers.filter((v) => v.bot).map((v) => headerScoreOf(ua.get(v.visitor) ?? 'empty'));
    const humanScores = [...new Set(d.arrivals.filter((a) => !a.bot).map((a) => a.ua))].map(headerScoreOf);
    Object.assign(check, botHint(botScores, humanScores.length ? Math.max(...humanScores) : null, d.roomDefence));
  }
  return check;
}

export function buildReport(d: ReplayData, opts: ReportOptions = {}): Report {
  const maxBotShare = opts.maxBotShare ?? DEFAULT_MAX_BOT_SHARE;
  if (!(maxBotShare >= 0 && maxBotShare <= 1)) throw new RangeError('maxBotShare must be between 0 and 1');
  const open = d.openAt;
  const sec = (ms: number) => (ms - open) / 1000;
  const outcomes = count(d.attempts.map((a) => a.outcome));
  const admitted = d.visitors.filter((v) => v.admittedAt !== null);
  const purchases = d.visitors.filter((v) => v.purchase === 'success');

  const visitorCount = new Set(d.arrivals.map((a) => a.visitor)).size;
  const joinedCount = new Set(d.attempts.filter((a) => a.outcome === 'joined').map((a) => d.arrivals[a.i]!.visitor)).size;
  const waiting = d.visitors.filter(unanswered);
  const answers = {
    followed: d.visitors.length, final: d.visitors.length - waiting.length, waiting: waiting.length,
    waitingBy: count(waiting.map((v) => (v.waitEnd === 'admitted' ? `purchase:${v.purchase ?? 'none'}` : `wait:${v.waitEnd}`))),
  };

  // Timeline, in bins of a whole number of seconds, at most ~120 bins.
  const lastAt = Math.max(d.endedAt, ...d.samples.map((s) => s.at));
  const firstAt = Math.min(open, d.attempts[0]?.sentAt ?? open);
  const span = Math.max(1, (lastAt - firstAt) / 1000);
  const binSec = Math.max(1, Math.ceil(span / 120));
  const t0 = Math.floor(sec(firstAt) / binSec) * binSec;
  const nb = Math.max(1, Math.ceil((sec(lastAt) - t0) / binSec) + 1);
  const bins: TimelineBin[] = Array.from({ length: nb }, (_, k) => ({ t: t0 + k * binSec, arrivals: 0, admissions: 0, queued: null, sold: null }));
  const bin = (ms: number) => bins[Math.min(nb - 1, Math.max(0, Math.floor((sec(ms) - t0) / binSec)))]!;
  for (const a of d.attempts) bin(a.sentAt).arrivals++;
  for (const v of admitted) bin(v.admittedAt!).admissions++;
  for (const s of d.samples) {
    const b = bin(s.at);
    if (s.queued !== null) b.queued = s.queued;
    if (s.sold !== null) b.sold = s.sold;
  }
  const samples: TimelineSample[] = [...d.samples].sort((a, b) => a.at - b.at)
    .map((s) => ({ t: Math.round(sec(s.at) * 100) / 100, queued: s.queued, sold: s.sold }));

  // Fairness after open.
  const after = d.visitors.filter((v) => v.joinTicket !== null);
  const fair = fairness(after.map((v) => v.joinedAt), after.map((v) => v.admittedTicket));

  // Bots (only when the arrivals are labelled).
  let bots: Report['bots'] = null;
  if (d.arrivals.some((a) => a.bot !== undefined)) {
    // One entry per visitor of the arrivals (a cookie-less bot that joins 40 times is one
    // visitor), so bots + humans = the visitors the profile or recording has.
    const byVisitor = new Map<string, { bot: boolean; outcomes: Set<string> }>();
    for (const a of d.arrivals) if (!byVisitor.has(a.visitor)) byVisitor.set(a.visitor, { bot: a.bot === true, outcomes: new Set() });
    let botAttempts = 0;
    let botStopped = 0;
    for (const at of d.attempts) {
      const a = d.arrivals[at.i]!;
      byVisitor.get(a.visitor)!.outcomes.add(at.outcome);
      if (a.bot) {
        botAttempts++;
        if (at.outcome !== 'joined') botStopped++;
      }
    }
    const humans = [...byVisitor.values()].filter((v) => !v.bot);
    const challenged = humans.filter((h) => h.outcomes.has('captcha_required') || h.outcomes.has('captcha_failed')).length;
    const limited = humans.filter((h) => h.outcomes.has('rate_limited')).length;
    const blocked = humans.filter((h) => h.outcomes.has('blocked')).length;
    const affected = humans.filter((h) => [...h.outcomes].some((o) => STOPPED.has(o))).length;
    const botUnits = purchases.filter((v) => v.bot).length;
    bots = {
      botVisitors: byVisitor.size - humans.length,
      botAttempts,
      botAttemptsStopped: botStopped,
      botVisitorsAdmitted: admitted.filter((v) => v.bot).length,
      botUnits,
      humanVisitors: humans.length,
      humansChallenged: challenged,
      humansLimited: limited,
      humansBlocked: blocked,
      falsePositiveRate: share(affected, humans.length) ?? 0,
      humanUnits: purchases.length - botUnits,
      botShareOfUnits: share(botUnits, purchases.length),
      botShareOfVisitors: share(byVisitor.size - humans.length, byVisitor.size) ?? 0,
      maxBotShare,
    };
  }

  const auditObj = (d.audit ?? { error: 'no audit' }) as Record<string, unknown>;
  const sold = typeof auditObj.sold === 'number' ? auditObj.sold : typeof d.saleEnd?.sold === 'number' ? d.saleEnd.sold : null;
  const soldOutSample = d.samples.find((s) => s.state === 'sold_out');
  const failures = count(d.visitors.filter((v) => v.purchase && v.purchase !== 'success').map((v) => v.purchase!));
  for (const v of d.visitors) if (v.waitEnd !== 'admitted') failures[`wait:${v.waitEnd}`] = (failures[`wait:${v.waitEnd}`] ?? 0) + 1;

  // Stock-aware admission.
  const lastThrough = [...d.samples].reverse().find((s) => typeof s.admittedThrough === 'number')?.admittedThrough ?? null;
  const roomAdmitted = Math.max(lastThrough ?? 0, admitted.length);
  const metSoldOut = d.visitors.filter((v) => v.purchase === 'reserve:sold_out');
  const claimMs = d.roomStock ? d.roomStock.claimSeconds * 1000 : null;
  const admission: Report['admission'] = {
    overbook: d.roomStock?.overbook ?? null, claimSeconds: d.roomStock?.claimSeconds ?? null, ghostShare: d.ghostShare ?? 0,
    admitted: roomAdmitted, admittedPerUnitSold: sold ? Math.round((roomAdmitted / sold) * 100) / 100 : null,
    metSoldOut: metSoldOut.length,
    promptMetSoldOut: claimMs === null ? 0 : metSoldOut.filter((v) => v.reserveSentAt != null && v.admittedAt !== null && v.reserveSentAt - v.admittedAt <= claimMs).length,
    walkedAway: d.visitors.filter((v) => v.purchase === 'walked_away').length,
    soldOutAfterSec: soldOutSample ? Math.round(sec(soldOutSample.at) * 10) / 10 : null,
  };

  // A recording: compare outcomes and ticket order with what was recorded.
  let replayCmp: Report['replay'] = null;
  if (d.arrivals.some((a) => a.outcome !== 'synthetic')) {
    // Only tickets given in arrival order: a visitor who joined in the pre-queue (in either run)
    // holds a place drawn at random, also on its later joins.
    const drawn = new Set<string>();
    for (const a of d.arrivals) if (a.outcome === 'joined' && a.ticket === null) drawn.add(a.visitor);
    for (const at of d.attempts) if (at.outcome === 'joined' && at.ticket === null) drawn.add(d.arrivals[at.i]!.visitor);
    const x: number[] = [];
    const y: number[] = [];
    for (const at of d.attempts) {
      const rec = d.arrivals[at.i]!;
      if (rec.ticket !== null && at.ticket !== null && !drawn.has(rec.visitor)) {
        x.push(rec.ticket);
        y.push(at.ticket);
      }
    }
    const k = kendallTau(x, y);
    replayCmp = {
      recordedOutcomes: count(d.arrivals.map((a) => a.outcome)),
      orderTau: k.tau === null ? null : Math.round(k.tau * 10000) / 10000,
      orderPairs: k.n,
      orderDiscordant: k.discordant,
    };
  }

  const checks: Check[] = [
    { name: 'no 5xx from the product', ok: !Object.keys(outcomes).some((o) => /^http_5/.test(o)), detail: Object.keys(outcomes).filter((o) => /^http_5/.test(o)).join(', ') || 'none' },
    { name: 'audit ok', ok: auditObj.ok === true, detail: JSON.stringify(auditObj) },
    { name: 'units sold <= stock', ok: sold !== null && sold <= d.stock, detail: `${sold} of ${d.stock}` },
    { name: 'checkout sold = purchases the shoppers saw', ok: sold === purchases.length, detail: `${sold} vs ${purchases.length}` },
  ];
  if (typeof auditObj.paidCounted === 'number') {
    checks.push({ name: 'paid orders in the tables = purchases', ok: auditObj.paidCounted === purchases.length, detail: `${auditObj.paidCounted} vs ${purchases.length}` });
  }
  // Only an ordered replay (joins sent one after another) can promise the recorded order;
  // a concurrent one reports tau and leaves the judgement to the reader.
  if (replayCmp && d.ordered) {
    checks.push({ name: 'same ticket order as recorded', ok: replayCmp.orderDiscordant === 0, detail: `${replayCmp.orderDiscordant} discordant pairs among ${replayCmp.orderPairs} joins` });
  }
  checks.push({
    name: 'every visitor got a final answer',
    ok: answers.waiting === 0,
    detail: answers.waiting === 0
      ? `${answers.final} of ${answers.followed} visitors followed were admitted and bought or were told the outcome`
      : `${answers.waiting} of ${answers.followed} visitors followed still waiting at the end (${Object.entries(answers.waitingBy).map(([k, v]) => `${k} ${v}`).join(', ')})`,
  });
  if (bots) checks.push(botShareCheck(d, bots, purchases));
  const fairnessReport = checkFairnessReport(d, roomAdmitted, purchases.length);
  checks.push(...fairnessReport.checks);
  // docs/api.md section 7: with overbook 1, a shopper who reserves within claimSeconds never gets sold_out.
  if (admission.overbook === 1) {
    checks.push({
      name: 'no shopper who reserved within claimSeconds met sold_out (overbook 1)',
      ok: admission.promptMetSoldOut === 0,
      detail: `${admission.promptMetSoldOut} of ${admission.metSoldOut} admitted shoppers told sold_out had reserved within ${admission.claimSeconds} s`,
    });
  }

  return {
    meta: {
      source: d.source, room: d.room, sale: d.sale, gateway: d.targets.gateway, checkout: d.targets.checkout, speed: d.speed,
      processes: d.processes, ordered: d.ordered, startedAt: new Date(d.startedAt).toISOString(), openAt: new Date(open).toISOString(),
      durationSec: Math.round((d.endedAt - d.startedAt) / 100) / 10, attempts: d.attempts.length, visitors: visitorCount,
      joined: joinedCount, followed: d.visitors.length,
    },
    outcomes,
    latencyMs: percentiles(d.attempts.filter((a) => a.status > 0).map((a) => a.latencyMs)),
    timeline: { binSec, bins, samples, sampleGapSec: SAMPLE_GAP_SEC },
    fairness: fair,
    bots,
    sales: {
      stock: d.stock, sold, purchases: purchases.length, admitted: admitted.length, failures,
      soldOutAfterSec: soldOutSample ? Math.round(sec(soldOutSample.at) * 10) / 10 : null,
    },
    admission,
    calibration: calibration(d.visitors),
    fairnessReport: fairnessReport.cmp,
    answers,
    audit: auditObj,
    replay: replayCmp,
    checks,
    ok: checks.every((c) => c.ok),
  };
}
