/**
 * `npm start` as a user runs it, for the tests of this folder: the real scripts/start.ts in its own
 * Node process (no npm or tsx wrapper, so its pid is the run's own, and it leads its own process
 * group), on free ports, with its own data folder, its own Redis port (it starts a redis-server
 * there) and a DATABASE_URL where nothing answers (so it starts its embedded PostgreSQL). Nothing
 * here touches the shared Redis or Postgres. Teardown kills whatever the runs left, by pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../shared/config.js';
import { freePort } from '../../shared/ports.js';
import type { Test } from 'tap';

export interface Teardown { teardown(fn: () => unknown): void }

export interface Run {
  pid: number;
  output(): string;
  /** Resolves when the process has ended. */
  ended: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasEnded(): boolean;
}

export interface Place {
  dataDir: string;
  env: NodeJS.ProcessEnv;
  gatewayPort: number;
  redisUrl: string;
  /** The port of DATABASE_URL, where the embedded PostgreSQL goes. */
  pgPort: number;
  /** Every run started here (teardown kills what is left of them). */
  runs: Run[];
}

/** Is a process with this pid running (not a zombie)? */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/** Pids of the processes whose command line mentions `text`. */
export function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(text)) pids.push(Number(d));
    } catch { /* gone meanwhile */ }
  }
  return pids;
}

/** The file name of the program `pid` runs ('' when gone). */
export function executable(pid: number): string {
  try {
    return path.basename(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '');
  } catch {
    return '';
  }
}

/** The pid in `<dataDir>/postgres/postmaster.pid`, or null. */
export function postmasterPid(dataDir: string): number | null {
  try {
    return Number(readFileSync(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]) || null;
  } catch {
    return null;
  }
}

const kill = (pid: number, signal: NodeJS.Signals) => { try { process.kill(pid, signal); } catch { /* gone */ } };

/** A data folder, free ports and the environment of `npm start` for them; all killed and removed at teardown. */
export async function place(t: Teardown, extraEnv: Record<string, string> = {}): Promise<Place> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'wr-start-'));
  chmodSync(dataDir, 0o755); // the embedded PostgreSQL runs as user postgres when we are root
  const [gatewayPort, checkoutPort, redisPort, pgPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['GATEWAY_URL', 'CHECKOUT_URL', 'JWKS_URL', 'REDIS_CLUSTER_NODES', 'NODE_ENV', 'GATEWAY_HOST', 'CHECKOUT_HOST']) delete env[k];
  Object.assign(env, {
    DATA_DIR: dataDir,
    GATEWAY_PORT: String(gatewayPort),
    CHECKOUT_PORT: String(checkoutPort),
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    DATABASE_URL: `postgres://root@127.0.0.1:${pgPort}/waitingroom`,
    LOG_LEVEL: 'warn',
    ...extraEnv,
  });
  const p: Place = { dataDir, env, gatewayPort, redisUrl: env.REDIS_URL!, pgPort, runs: [] };
  t.teardown(async () => {
    for (const run of p.runs) if (!run.hasEnded()) kill(run.pid, 'SIGKILL');
    // What the runs started is in their process groups (postmaster, backends, redis-server), plus
    // the postmaster by its pid file and anything else naming the data folder.
    for (const run of p.runs) kill(-run.pid, 'SIGKILL');
    const pm = postmasterPid(dataDir);
    if (pm && running(pm)) kill(pm, 'SIGKILL');
    for (const pid of processesMentioning(dataDir)) kill(pid, 'SIGKILL');
    await Promise.all(p.runs.map((r) => r.ended));
    for (let i = 0; i < 100 && processesMentioning(dataDir).length; i++) await new Promise((r) => setTimeout(r, 50));
    rmSync(dataDir, { recursive: true, force: true });
  });
  return p;
}

/**
 * Starts `npm start` in `p` (`env` overrides its environment): scripts/start.ts in one Node process,
 * or with `viaNpm` the real `npm start` (npm → sh → tsx → node, npm leading the group).
 */
export function start(p: Place, env: Record<string, string> = {}, viaNpm = false): Run {
  const [cmd, args] = viaNpm ? ['npm', ['start']] : [process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'scripts/start.ts')]];
  const child: ChildProcess = spawn(cmd, args, {
    cwd: PROJECT_ROOT,
    env: { ...p.env, ...env },
    detached: true, // leads its own process group, as `npm start` in a terminal does
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
  let done = false;
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => { done = true; resolve({ code, signal }); }));
  const run: Run = { pid: child.pid!, output: () => out, ended, hasEnded: () => done };
  p.runs.push(run);
  return run;
}

/** Waits until the run prints `re` (or ends, or `ms` pass: then fails with what it printed). */
export async function printed(run: Run, re: RegExp, ms = 60_000): Promise<RegExpExecArray> {
  for (const deadline = Date.now() + ms; ; await new Promise((r) => setTimeout(r, 50))) {
    const m = re.exec(run.output());
    if (m) return m;
    if (run.hasEnded() || Date.now() > deadline) {
      throw new Error(`npm start ${run.hasEnded() ? 'ended' : `printed nothing like ${re} within ${ms} ms`}; it printed:\n${run.output()}`);
    }
  }
}

/** Waits for the summary `npm start` prints once everything runs: the gateway's and checkout's URLs. */
export async function started(run: Run): Promise<{ gateway: string; sale: string | null }> {
  await printed(run, /Ctrl-C stops everything/);
  const gateway = /queue page\s+(http:\/\/\S+)\/rooms\/demo/.exec(run.output())![1]!;
  const sale = /checkout\s+(http:\/\/\S+\/sales\/\S+)/.exec(run.output())?.[1] ?? null;
  return { gateway, sale };
}

/** Polls `check` every 50 ms until it is true; false if `ms` pass first. */
export async function eventually(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) if (await check()) return true;
  return check();
}

/** The whole product answers as a shopper and an operator see it. */
export async function productAnswers(t: Test, run: Run) {
  const { gateway, sale } = await started(run);
  t.notMatch(run.output(), /did not start|undefined|failed/, 'nothing failed to start');
  t.ok(sale, 'the checkout line names the demo sale (checkout runs)');
  t.equal((await fetch(`${gateway}/healthz`)).status, 200, 'gateway /healthz 200');
  const join = await fetch(`${gateway}/api/rooms/demo/join`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const body = (await join.json()) as Record<string, unknown>;
  t.equal(join.status, 200, 'a join works');
  t.equal(body.state, 'prequeue', 'into the pre-queue of the demo room');
  if (!sale) return;
  const origin = new URL(sale).origin;
  t.equal((await fetch(`${origin}/healthz`)).status, 200, 'checkout /healthz 200 (Postgres and Redis answer)');
  const s = await fetch(sale.replace('/sales/', '/api/sales/'));
  t.equal(s.status, 200, 'the demo sale is served');
  t.match(await s.json(), { total: 100, available: 100 });
}
