/**
 * The replay driver: creates its own room and sale, schedules every recorded (or synthetic)
 * join attempt at its offset divided by `speed`, spreads visitors over child processes when
 * there are many (each holds at most ~15,000 WebSockets), samples the room and the sale once a
 * second, and gathers everything the report needs, ending with the checkout's audit.
 */
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { AddressMap } from './addresses.js';
import { audit, checkHealth, fairnessReport, putRoom, putSale, roomState, saleState, type FetchedFairnessReport, type Targets } from './api.js';
import { hashStr, runShard, type AttemptResult, type Progress, type ShardAttempt, type ShardJob, type ShardResult, type VisitorResult } from './shard.js';
import type { ReplayArrival } from './ndjson.js';
import type { RoomConfig } from '../../waiting-room/room-config.js';
import { progressBar } from './progress.js';

export const VISITORS_PER_PROCESS = 15_000;

export interface ReplayOptions {
  targets: Targets;
  /** What is replayed: "file:<path>" or "profile:<name>", for the report. */
  source: string;
  arrivals: ReplayArrival[];
  /** opensAt in the arrivals' ms. */
  open: number;
  stock: number;
  speed?: number;
  room?: string;
  sale?: string;
  /** Extra room settings merged into the PUT (limits, captcha, trustedProxies...). */
  roomConfig?: Record<string, unknown>;
  admitRatePerMin?: number;
  maxActive?: number;
  /** Send joins one after another (each waits for the previous answer): keeps order exact. */
  ordered?: boolean;
  processes?: number;
  /** Give up on visitors still waiting after this many seconds of replay. */
  timeoutSec?: number;
  /**
   * Seconds after the room's state says sold_out or closed when a visitor still waiting counts
   * as never told (`not_told`) and the replay stops waiting for it (default 10).
   */
  answerGraceSec?: number;
  /**
   * Share (0..1) of followed visitors who, admitted, walk away without reserving (ghosts; the
   * same visitors in every run): the room sees their claims lapse. Default 0.
   */
  ghostShare?: number;
  /** Turn arrival recording on for the replay's room. */
  record?: boolean;
  /**
   * Admit nobody (admitRatePerMin 0) until every attempt has been sent, then admit at the
   * configured rate: outcomes then do not depend on how fast the sale sells out.
   */
  holdAdmission?: boolean;
  progress?: boolean;
  log?: (line: string) => void;
}

export interface Sample {
  at: number;
  queued: number | null;
  admittedThrough: number | null;
  state: string | null;
  held: boolean | null;
  sold: number | null;
  available: number | null;
}

export interface ReplayData {
  source: string;
  room: string;
  sale: string;
  targets: { gateway: string; checkout: string };
  speed: number;
  stock: number;
  processes: number;
  ordered: boolean;
  startedAt: number;
  openAt: number;
  endedAt: number;
  arrivals: ReplayArrival[];
  attempts: AttemptResult[];
  visitors: VisitorResult[];
  samples: Sample[];
  /** The room's bot-defence settings as the gateway stored them (the PUT's answer). */
  roomDefence: Pick<RoomConfig, 'captcha' | 'allow'>;
  /** The room's stock-aware admission settings as stored (docs/api.md section 7). */
  roomStock?: Pick<RoomConfig, 'overbook' | 'claimSeconds'>;
  /** ReplayOptions.ghostShare. */
  ghostShare?: number;
  /** GET /api/sales/:sale at the end. */
  saleEnd: any;
  audit: Record<string, unknown> | { error: string };
  /** GET /api/rooms/:room/report at the end (the gateway's signed fairness report). */
  fairnessReport?: FetchedFairnessReport;
}

export async function replay(opts: ReplayOptions): Promise<ReplayData> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const speed = opts.speed ?? 1;
  if (!(speed > 0)) throw new RangeError('speed must be > 0');
  const ghostShare = opts.ghostShare ?? 0;
  if (!(ghostShare >= 0 && ghostShare <= 1)) throw new RangeError('ghostShare must be between 0 and 1');
  if (!opts.arrivals.length) throw new RangeError('nothing to replay: no arrivals');
  const runId = randomUUID().slice(0, 8);
  const room = opts.room ?? `replay-${runId}`;
  const sale = opts.sale ?? room;
  const t = opts.targets;
  // Refuse to start against a product that is not there (naming the URL tried).
  await checkHealth(t);
  const first = opts.arrivals[0]!.t;
  const last = opts.arrivals[opts.arrivals.length - 1]!.t;

  // Visitors that keep a cookie hold a WebSocket each (processes are sized by them).
  const distinct = new Set(opts.arrivals.filter((a) => !a.noCookie).map((a) => a.visitor)).size;
  const visitors = new Set(opts.arrivals.map((a) => a.visitor)).size;
  const ordered = opts.ordered ?? false;
  const processes = ordered ? 1 : Math.max(1, opts.processes ?? Math.ceil(distinct / VISITORS_PER_PROCESS));

  // Setup first; the clock starts after it so the first arrival is not late.
  const leadMs = 1500 + processes * 1500;
  const setupAt = Date.now();
  const startAt = setupAt + leadMs;
  const openAt = startAt + (opts.open - first) / speed;
  const admitRatePerMin = opts.admitRatePerMin ?? 6000;
  const prequeueSeconds = Math.max(60, Math.ceil((openAt - setupAt) / 1000) + 60);
  await putSale(t, sale, { total: opts.stock, name: `Replay ${opts.source}` });
  const roomCfg = await putRoom(t, room, {
    sale,
    opensAt: new Date(openAt).toISOString(),
    closesAt: null,
    prequeueSeconds,
    admitRatePerMin: opts.holdAdmission ? 0 : admitRatePerMin,
    maxActive: opts.maxActive ?? 1000,
    checkoutUrl: `${t.checkout}/sales/${encodeURIComponent(sale)}`,
    record: opts.record ?? false,
    ...opts.roomConfig,
  });
  log(`replay ${opts.source}: ${opts.arrivals.length} attempts from ${visitors} visitors (${visitors - distinct} keep no cookie), speed ${speed}x, room ${room}, sale ${sale} (stock ${opts.stock}), ${processes} process(es)${ordered ? ', ordered' : ''}`);

  const addresses = new AddressMap();
  const shards: ShardAttempt[][] = Array.from({ length: processes }, () => []);
  opts.arrivals.forEach((a, i) => {
    const shard = a.noCookie ? i % processes : hashStr(a.visitor) % processes;
    const sa: ShardAttempt = {
      i, at: startAt + (a.t - first) / speed, visitor: a.visitor, localAddress: addresses.addressOf(a.ip, a.subnet), ua: a.ua,
    };
    if (a.bot !== undefined) sa.bot = a.bot;
    if (a.noCookie) sa.noCookie = true;
    shards[shard]!.push(sa);
  });
  const deadline = startAt + (last - first) / speed + (opts.timeoutSec ?? 120) * 1000;
  const jobs: ShardJob[] = shards.map((attempts) => ({
    gateway: t.gateway, checkout: t.checkout, room, sale, runId, ordered, deadline, attempts,
    answerGraceMs: (opts.answerGraceSec ?? 10) * 1000, ghostShare,
  }));

  const progress: Progress[] = jobs.map(() => ({ sent: 0, joined: 0, admitted: 0, bought: 0, settled: 0 }));
  const bar = opts.progress === false ? null : progressBar('replay');
  const total = opts.arrivals.length;
  const samples: Sample[] = [];
  let sampling = true;
  let held = opts.holdAdmission ?? false;
  // Its own connections, so samples are not queued behind the shoppers' checkout calls, and a
  // short timeout: a sample that does not come back is a gap in the charts, not a stall.
  const sampleAgent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const sampleOpts = { agent: sampleAgent, timeoutMs: 2000 };
  const sampler = (async () => {
    while (sampling) {
      if (held && progress.reduce((n, p) => n + p.sent, 0) >= total) {
        held = false;
        await putRoom(t, room, { admitRatePerMin });
        log(`every attempt sent: admission opened at ${admitRatePerMin}/min`);
      }
      const [r, s] = await Promise.all([roomState(t, room, sampleOpts).catch(() => null), saleState(t, sale, sampleOpts).catch(() => null)]);
      samples.push({
        at: Date.now(), queued: r?.queued ?? null, admittedThrough: r?.admittedThrough ?? null, state: r?.state ?? null,
        held: typeof r?.held === 'boolean' ? r.held : null, sold: s?.sold ?? null, available: s?.available ?? null,
      });
      const sum = progress.reduce((acc, p) => ({
        sent: acc.sent + p.sent, joined: acc.joined + p.joined, admitted: acc.admitted + p.admitted,
        bought: acc.bought + p.bought, settled: acc.settled + p.settled,
      }));
      bar?.update(sum.sent + sum.settled, total + sum.joined,
        `sent ${sum.sent}/${total} joined ${sum.joined} admitted ${sum.admitted} bought ${sum.bought} queued ${r?.queued ?? '?'} ${r?.state ?? ''}`);
      await new Promise((res) => setTimeout(res, 1000));
    }
  })();

  let results: ShardResult[];
  try {
    results = processes === 1
      ? [await runShard(jobs[0]!, (p) => (progress[0] = p))]
      : await Promise.all(jobs.map((job, k) => runWorker(job, (p) => (progress[k] = p))));
  } finally {
    sampling = false;
    await sampler;
    sampleAgent.destroy();
  }
  bar?.done();
  const endedAt = Date.now();
  const finalSale = await saleState(t, sale).catch((e: Error) => ({ error: e.message }));
  const finalRoom = await roomState(t, room).catch(() => null);
  samples.push({
    at: Date.now(), queued: finalRoom?.queued ?? null, admittedThrough: finalRoom?.admittedThrough ?? null, state: finalRoom?.state ?? null,
    held: typeof finalRoom?.held === 'boolean' ? finalRoom.held : null, sold: (finalSale as any).sold ?? null, available: (finalSale as any).available ?? null,
  });
  const aud = await audit(t, sale).catch((e: Error) => ({ error: e.message }));
  const fairness = await fairnessReport(t, room);
  return {
    source: opts.source, room, sale, targets: { gateway: t.gateway, checkout: t.checkout }, speed, stock: opts.stock,
    processes, ordered, startedAt: startAt, openAt, endedAt, arrivals: opts.arrivals,
    attempts: results.flatMap((r) => r.attempts).sort((a, b) => a.sentAt - b.sentAt),
    visitors: results.flatMap((r) => r.visitors), samples,
    roomDefence: { captcha: roomCfg.captcha, allow: roomCfg.allow },
    roomStock: { overbook: roomCfg.overbook, claimSeconds: roomCfg.claimSeconds }, ghostShare, saleEnd: finalSale, audit: aud,
    fairnessReport: fairness,
  };
}

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

function runWorker(job: ShardJob, onProgress: (p: Progress) => void): Promise<ShardResult> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let settled = false;
    const kill = setTimeout(() => child.kill('SIGKILL'), job.deadline - Date.now() + 60_000);
    child.on('message', (m: any) => {
      if (m.type === 'progress') onProgress(m.progress);
      else if (m.type === 'result') {
        settled = true;
        resolve(m.result);
      } else if (m.type === 'error') {
        settled = true;
        reject(new Error(`replay worker failed: ${m.message}`));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(kill);
      if (!settled) reject(new Error(`replay worker exited with code ${code} before its result`));
    });
    child.send(job);
  });
}
