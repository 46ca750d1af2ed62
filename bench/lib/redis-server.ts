/**
 * A redis-server of the benchmark's own (no persistence, 127.0.0.1, a free port), so the Redis CPU
 * per join is the benchmark's alone (the shared server on 6379 also serves the other sessions'
 * tests), read two ways over a stretch: the process's CPU from /proc, and INFO's `used_cpu_*` and
 * `commandstats` (scripts and commands run, and the usec Redis spent in each).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../shared/ports.js';
import { redisAnswers } from '../../shared/redis.js';

export interface RedisUse {
  /** used_cpu_user + used_cpu_sys over the stretch, seconds. */
  cpuSeconds: number;
  /** Calls and usec per command name (lower case; evalsha counts the script's own commands apart). */
  commands: Record<string, { calls: number; usec: number }>;
}

export interface BenchRedis {
  url: string;
  port: number;
  pid: number;
  /** Start measuring; the returned function answers what Redis did since. */
  meter(): Promise<() => Promise<RedisUse>>;
  stop(): Promise<void>;
}

async function sample(client: Redis): Promise<RedisUse> {
  const [cpu, stats] = await Promise.all([client.info('cpu'), client.info('commandstats')]);
  const num = (re: RegExp) => Number(re.exec(cpu)?.[1] ?? 0);
  const commands: RedisUse['commands'] = {};
  for (const m of stats.matchAll(/cmdstat_([\w|-]+):calls=(\d+),usec=(\d+)/g)) commands[m[1]!] = { calls: Number(m[2]), usec: Number(m[3]) };
  return { cpuSeconds: num(/used_cpu_user:([\d.]+)/) + num(/used_cpu_sys:([\d.]+)/), commands };
}

/** The difference of two samples. */
function since(a: RedisUse, b: RedisUse): RedisUse {
  const commands: RedisUse['commands'] = {};
  for (const [k, v] of Object.entries(b.commands)) {
    const calls = v.calls - (a.commands[k]?.calls ?? 0);
    if (calls > 0) commands[k] = { calls, usec: v.usec - (a.commands[k]?.usec ?? 0) };
  }
  return { cpuSeconds: b.cpuSeconds - a.cpuSeconds, commands };
}

/** A meter on any Redis (INFO over a client of its own); on a shared server it counts every client's work. */
export function redisMeter(url: string): { meter: BenchRedis['meter']; close(): void } {
  const client = new Redis(url);
  return {
    async meter() {
      const a = await sample(client);
      return async () => since(a, await sample(client));
    },
    close: () => client.disconnect(),
  };
}

/** `persistence`: the server's persistence flags (default none; bench/capacity uses the cluster nodes' AOF everysec). */
export async function startBenchRedis(persistence: string[] = ['--appendonly', 'no']): Promise<BenchRedis> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-redis-'));
  const child: ChildProcess = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '', ...persistence], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; !(await redisAnswers(url, 200)); i++) {
    if (i > 100) throw new Error(`the bench's redis-server on port ${port} did not answer`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const client = new Redis(url);
  return {
    url,
    port,
    pid: child.pid!,
    async meter() {
      const a = await sample(client);
      return async () => since(a, await sample(client));
    },
    async stop() {
      client.disconnect();
      if (child.exitCode === null) await new Promise<void>((resolve) => { child.once('exit', () => resolve()); child.kill('SIGKILL'); });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Redis CPU (µs, used_cpu_*) per answer; script calls and commands (a script's own included) per answer. */
export function perAnswer(use: RedisUse, answers: number): { cpuUs: number; scripts: number; commands: number } {
  let scripts = 0;
  let commands = 0;
  for (const [k, v] of Object.entries(use.commands)) {
    if (k === 'evalsha' || k === 'eval') scripts += v.calls;
    else if (!k.startsWith('info') && !k.startsWith('config')) commands += v.calls;
  }
  return { cpuUs: (1e6 * use.cpuSeconds) / answers, scripts: scripts / answers, commands: commands / answers };
}
