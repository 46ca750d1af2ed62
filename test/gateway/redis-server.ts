/**
 * A redis-server of the test's own, for tests that kill, hang or empty a store (never the shared
 * one): a free port picked at run time, data in a temp directory, no persistence (a restart comes
 * back empty, as Redis does after losing its data), stopped at teardown even on failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { redisAnswers } from '../../shared/redis.js';
import type { Teardown } from './helpers.js';
import { freePort } from '../../shared/ports.js';

export interface OwnRedis {
  url: string;
  /** SIGKILL: connections refused from now on. */
  kill(): Promise<void>;
  /** A new, empty redis-server on the same port. */
  start(): Promise<void>;
  /** SIGSTOP: connections stay open, nothing answers (a hung Redis). */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
}

export async function ownRedis(t: Teardown): Promise<OwnRedis> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wr-own-redis-'));
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;
  const kill = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.kill('SIGCONT'); c.kill('SIGKILL'); });
  };
  const start = async () => {
    child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if (await redisAnswers(url, 200)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server on ${port} did not answer`);
  };
  t.teardown(async () => { await kill(); rmSync(dir, { recursive: true, force: true }); });
  await start();
  return { url, kill, start, pause: () => child?.kill('SIGSTOP'), resume: () => child?.kill('SIGCONT') };
}
