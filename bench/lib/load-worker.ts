/**
 * Load worker process (forked by LoadFleet, bench/lib/load.ts). Runs one HTTP job at a time
 * over keep-alive connections bound to distinct 127.0.0.0/8 source addresses:
 * - `closed`: every connection sends its next request as soon as the last one answers
 *   (the most the server can do with that many clients);
 * - `open`: requests are due at a constant rate whether or not earlier ones answered
 *   (latency counted from the moment a request was due, so a slow server cannot hide
 *   its queue: no coordinated omission).
 */
import { performance } from 'node:perf_hooks';
import { serveIpc } from './child.js';
import { Histogram } from './histogram.js';
import { HttpConn, buildRequest, loopbackAddress } from './http-conn.js';
import type { LoadJob, LoadResult } from './load.js';

async function openConns(job: LoadJob): Promise<HttpConn[]> {
  const conns = Array.from({ length: job.connections }, (_, i) =>
    new HttpConn(job.port, job.host, job.spreadSources ? loopbackAddress(job.addressOffset + i) : undefined));
  await Promise.all(conns.map((c) => c.ready));
  return conns;
}

async function runJob(job: LoadJob): Promise<LoadResult> {
  const req = buildRequest(job.method, `${job.host}:${job.port}`, job.path, job.headers, job.body);
  const conns = await openConns(job);
  const hist = new Histogram();
  const statuses: Record<string, number> = {};
  let ok = 0;
  let errors = 0;
  let unsent = 0;
  const t0 = performance.now() + 20;
  const tMeasure = t0 + job.warmupMs;
  const tEnd = tMeasure + job.durationMs;
  let answered = 0;
  const count = (status: number, intended: number, done: number) => {
    answered++;
    if (intended < tMeasure || intended >= tEnd) return;
    hist.record(done - intended);
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status >= 200 && status < 300) ok++;
  };
  const replace = (i: number) => {
    errors++;
    conns[i] = new HttpConn(job.port, job.host, job.spreadSources ? loopbackAddress(job.addressOffset + i) : undefined);
    return conns[i]!.ready;
  };

  if (job.kind === 'closed') {
    await new Promise((r) => setTimeout(r, Math.max(0, t0 - performance.now())));
    await Promise.all(conns.map(async (_, i) => {
      while (performance.now() < tEnd) {
        const start = performance.now();
        try {
          const r = await conns[i]!.send(req);
          count(r.status, start, performance.now());
        } catch {
          await replace(i).catch(() => undefined);
        }
      }
    }));
  } else {
    const interval = 1000 / job.rate!;
    const idle: number[] = conns.map((_, i) => i);
    const due: number[] = [];
    let head = 0;
    let next = 0;
    let inFlight = 0;
    const fire = (i: number, intended: number) => {
      inFlight++;
      conns[i]!.send(req).then(
        (r) => { inFlight--; count(r.status, intended, performance.now()); release(i); },
        () => { inFlight--; replace(i).then(() => release(i), () => undefined); },
      );
    };
    const release = (i: number) => {
      if (head < due.length) fire(i, due[head++]!);
      else idle.push(i);
    };
    await new Promise<void>((resolve) => {
      const pump = () => {
        const now = performance.now();
        while (t0 + next * interval <= now && t0 + next * interval < tEnd) due.push(t0 + interval * next++);
        while (head < due.length && idle.length) fire(idle.pop()!, due[head++]!);
        if (now < tEnd) setTimeout(pump, 1);
        else resolve();
      };
      pump();
    });
    // Let what is in flight finish (bounded); whatever never got a connection counts as
    // answered no sooner than the end of the drain.
    const drainUntil = performance.now() + 2000;
    while ((inFlight > 0 || head < due.length) && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 5));
    const now = performance.now();
    for (; head < due.length; head++) {
      unsent++;
      if (due[head]! >= tMeasure) hist.record(now - due[head]!);
    }
  }
  for (const c of conns) c.close();
  return { ok, answered, errors, unsent, statuses, hist: hist.toJSON(), durationMs: job.durationMs };
}

serveIpc({ run: (msg: { job: LoadJob }) => runJob(msg.job) }, () => undefined);
