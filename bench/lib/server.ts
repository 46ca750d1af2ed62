/** A server under test in its own child process (bench/lib/server-child.ts). */
import { Child } from './child.js';

import { readFileSync, readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface ServerMem { rss: number; heapUsed: number; external: number }

/** Resident set size of a process in bytes, read from /proc (works even when it is out of fds). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** The fields of /proc/<pid>/stat after the command name (fields[1]: parent pid; [11], [12]: user, system ticks). */
function statFields(pid: number | string): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 10 ms). */
export function cpuSecondsOf(pid: number): number {
  const fields = statFields(pid);
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds of process `root` and its children (a Postgres server: the postmaster and its backends, each in a session of its own). */
export function treeCpuSeconds(root: number): number {
  let total = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = statFields(d);
      if (Number(d) === root || Number(f[1]) === root) total += (Number(f[11]) + Number(f[12])) / 100;
    } catch { /* exited meanwhile */ }
  }
  return total;
}

export interface CpuUse {
  /** CPU seconds each group of processes used. */
  seconds: Record<string, number>;
  /** Wall-clock seconds measured over. */
  wall: number;
}

/** CPU time each group of processes uses from now until the returned function is called. */
export function cpuMeter(pids: Record<string, number[]>): () => CpuUse {
  const sum = (ps: number[]) => ps.reduce((t, p) => { try { return t + cpuSecondsOf(p); } catch { return t; } }, 0);
  const t0 = performance.now();
  const c0 = Object.fromEntries(Object.entries(pids).map(([k, ps]) => [k, sum(ps)]));
  return () => ({
    wall: (performance.now() - t0) / 1000,
    seconds: Object.fromEntries(Object.entries(pids).map(([k, ps]) => [k, sum(ps) - c0[k]!])),
  });
}

/** Open file descriptors of a process. */
export function fdsOf(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export class ServerProcess {
  private child: Child;
  port = 0;

  constructor(readonly target: 'trivial' | 'baseline' | 'gateway', opts: { env?: NodeJS.ProcessEnv } = {}) {
    this.child = new Child(new URL('./server-child.ts', import.meta.url), { execArgv: ['--expose-gc'], env: opts.env });
  }

  get pid(): number {
    return this.child.pid;
  }

  async start(options: unknown = {}): Promise<{ port: number; info: Record<string, unknown> }> {
    const r = await this.child.call<{ port: number; info: Record<string, unknown> }>({ type: 'start', target: this.target, options }, 60_000);
    this.port = r.port;
    return r;
  }

  async mem(): Promise<ServerMem> {
    const heap = await this.child.call<{ heapUsed: number; external: number }>({ type: 'mem' });
    return { rss: rssOf(this.pid), ...heap };
  }
  /** Full collections in the server, then its memory. */
  async gc(): Promise<ServerMem> {
    const heap = await this.child.call<{ heapUsed: number; external: number }>({ type: 'gc' });
    return { rss: rssOf(this.pid), ...heap };
  }
  fds(): number { return fdsOf(this.pid); }

  /** A V8 CPU profile of the server while `work` runs, written to `<dir>/<name>.cpuprofile`. */
  async profiled<T>(dir: string, name: string, work: () => Promise<T>): Promise<T> {
    await this.child.call({ type: 'profileStart' });
    try {
      return await work();
    } finally {
      await this.child.call({ type: 'profileStop', dir, name });
    }
  }
  command<T>(name: string, args: unknown = {}, timeoutMs = 30_000): Promise<T> {
    return this.child.call({ type: 'command', name, args }, timeoutMs);
  }
  stop(): Promise<void> { return this.child.stop(8000); }
}
