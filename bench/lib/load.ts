/**
 * HTTP load generation from worker processes (bench/lib/load-worker.ts), so the load runs on
 * other processes than the benchmark's parent and the server under test. A fleet is started
 * once and runs many short jobs; each job's rate and connections are split over the workers
 * and their latency histograms merged.
 */
import { Child } from './child.js';
import { Histogram, type HistogramJSON } from './histogram.js';

export interface LoadJob {
  kind: 'closed' | 'open';
  host: string;
  port: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** Connections (per worker when sent to a worker; in total when given to LoadFleet.run). */
  connections: number;
  /** Requests per second for `open` (per worker / in total, as above). */
  rate?: number;
  durationMs: number;
  /** Requests due before this much time has passed are sent but not counted. */
  warmupMs: number;
  /** Bind each connection to its own 127.0.0.0/8 source address. */
  spreadSources: boolean;
  addressOffset: number;
}

export interface LoadResult {
  ok: number;
  /** Every answer, warm-up and drain included (to divide CPU time by). */
  answered: number;
  errors: number;
  unsent: number;
  statuses: Record<string, number>;
  hist: HistogramJSON;
  durationMs: number;
}

export interface LoadSummary {
  /** 2xx answers per second over the measured window. */
  okPerSec: number;
  /** Every answer, warm-up and drain included. */
  answered: number;
  p50: number;
  p99: number;
  max: number;
  statuses: Record<string, number>;
  errors: number;
  unsent: number;
}

export class LoadFleet {
  private workers: Child[];
  private jobs = 0;

  constructor(readonly size = 2) {
    this.workers = Array.from({ length: size }, () => new Child(new URL('./load-worker.ts', import.meta.url)));
  }

  get pids(): number[] {
    return this.workers.map((w) => w.pid);
  }

  async run(job: Omit<LoadJob, 'addressOffset'>): Promise<LoadSummary> {
    const n = this.workers.length;
    // Fresh source addresses for every job, so per-IP state from an earlier job never carries over.
    const base = (this.jobs++ % 50) * 1000;
    const results = await Promise.all(this.workers.map((w, k) => {
      const sub: LoadJob = {
        ...job,
        connections: Math.max(1, Math.round(job.connections / n)),
        rate: job.rate === undefined ? undefined : job.rate / n,
        addressOffset: base + k * Math.ceil(job.connections / n),
      };
      return w.call<LoadResult>({ type: 'run', job: sub }, job.warmupMs + job.durationMs + 30_000);
    }));
    const hist = new Histogram();
    const statuses: Record<string, number> = {};
    let ok = 0, errors = 0, unsent = 0, answered = 0;
    for (const r of results) {
      hist.merge(r.hist);
      ok += r.ok;
      answered += r.answered;
      errors += r.errors;
      unsent += r.unsent;
      for (const [s, c] of Object.entries(r.statuses)) statuses[s] = (statuses[s] ?? 0) + c;
    }
    return {
      okPerSec: ok / (job.durationMs / 1000), answered,
      p50: hist.percentile(50), p99: hist.percentile(99), max: hist.max,
      statuses, errors, unsent,
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}
