/**
 * Child service processes for `npm run cluster`, `npm run chaos` and the process tests: each runs
 * one entry point (scripts/gateway.ts, scripts/checkout.ts) in its own Node process (no npm or npx
 * wrapper, so the pid is the service's own), resolves once it prints `listening on HOST:PORT`, and
 * is stopped by its own pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from '../shared/config.js';
import { freePort } from '../shared/ports.js';

export interface Service {
  name: string;
  child: ChildProcess;
  pid: number;
  host: string;
  port: number;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  exited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL now; resolves once it has exited. */
  kill(): Promise<void>;
}

export interface SpawnOptions {
  env: NodeJS.ProcessEnv;
  /** Give up if no `listening on` line within this (default 60 s: tsx compiles on a busy machine). */
  timeoutMs?: number;
  /** Each line it prints, prefixed with its name (default: kept, not printed). */
  onLine?: (line: string) => void;
}

const LISTENING = /listening on (\S+):(\d+)/;

export function spawnService(name: string, script: string, opts: SpawnOptions): Promise<Service> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, script)], {
    cwd: PROJECT_ROOT,
    env: opts.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let partial = '';
  const onData = (chunk: Buffer) => {
    const text = chunk.toString();
    out += text;
    if (out.length > 1_000_000) out = out.slice(-500_000);
    if (opts.onLine) {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) if (l) opts.onLine(`${name}: ${l}`);
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exitedP = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const stop = async (graceMs = 10_000) => {
    if (exited()) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => { if (!exited()) child.kill('SIGKILL'); }, graceMs);
    await exitedP;
    clearTimeout(t);
  };
  const kill = async () => {
    if (exited()) return;
    child.kill('SIGKILL');
    await exitedP;
  };
  return new Promise<Service>((resolve, reject) => {
    const timer = setTimeout(() => {
      void kill();
      reject(new Error(`${name} printed no "listening on" line within ${opts.timeoutMs ?? 60_000} ms:\n${out}`));
    }, opts.timeoutMs ?? 60_000);
    const check = () => {
      const m = LISTENING.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      child.stderr!.off('data', check);
      resolve({ name, child, pid: child.pid!, host: m[1]!, port: Number(m[2]), output: () => out, exited, stop, kill });
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} ended (${signal ?? `code ${code}`}) before listening:\n${out}`));
    });
  });
}

