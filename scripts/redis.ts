/**
 * Make sure a Redis answers at REDIS_URL: if none does and `redis-server` is on the PATH, start
 * one for this run (data under `<dataDir>/redis`, same port as the URL, output in `<dataDir>/redis.log`)
 * and stop it on request; if this process dies first, a watchdog stops it (shared/leftovers.ts).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { redisAnswers } from '../shared/redis.js';
import { describeError } from '../shared/errors.js';
import { childLog, guardChild, leftover, stopProcess } from '../shared/leftovers.js';

export interface RedisHandle { started: boolean; stop(): Promise<void> }

export class NoRedisError extends Error {
  override name = 'NoRedisError';
}

export async function ensureRedis(redisUrl: string, dataDir: string, log: (line: string) => void = console.log, binary = 'redis-server'): Promise<RedisHandle> {
  // A redis-server that an earlier run started and could not stop (killed) is stopped first, so it
  // neither outlives that run nor is taken for a Redis of the user's own.
  const record = path.join(dataDir, 'redis.run.json');
  const left = leftover(record);
  if (left && !left.ownerRuns) {
    log(`A redis-server started by an earlier run still runs (pid ${left.pid}); stopping it.`);
    await stopProcess(left.pid, 'SIGTERM');
  }
  if (await redisAnswers(redisUrl)) return { started: false, async stop() {} };
  const url = new URL(redisUrl);
  const host = url.hostname || '127.0.0.1';
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) {
    throw new NoRedisError(`No Redis answers at ${redisUrl}, and it is not on this machine, so it cannot be started here.`);
  }
  if (spawnSync(binary, ['--version']).status !== 0) {
    throw new NoRedisError(
      `No Redis answers at ${redisUrl} and there is no redis-server on the PATH.\n` +
        'Install one (Debian/Ubuntu: `sudo apt-get install redis-server`) or set REDIS_URL to a Redis you have.',
    );
  }
  const dir = path.join(dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const port = url.port || '6379';
  const logFile = path.join(dataDir, 'redis.log');
  const output = childLog(logFile);
  const child: ChildProcess = spawn(binary, ['--bind', '127.0.0.1', '--port', port, '--dir', dir, '--save', '60 1000', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', output.write);
  child.stderr!.on('data', output.write);
  let ended: string | null = null;
  const exited = new Promise<void>((resolve) => child.once('exit', (code, signal) => {
    ended = signal ? `killed by ${signal}` : `exit code ${code}`;
    resolve();
  }));
  child.once('error', (e) => { ended = describeError(e); });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  };
  const failed = (what: string) =>
    new NoRedisError(`redis-server on port ${port} ${what}. Its last output:\n${output.tail()}\n(whole log: ${logFile})`);
  for (let i = 0; i < 50 && ended === null; i++) {
    if (await redisAnswers(redisUrl, 200)) {
      const guard = guardChild(record, child.pid!, 'SIGTERM');
      log(`No Redis was running at ${redisUrl}: started redis-server (pid ${child.pid}, data in ${dir}, log in ${logFile}) for this run.`);
      return {
        started: true,
        stop: async () => {
          await stop();
          guard.release();
        },
      };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (ended !== null) throw failed(`ended before it answered (${ended as string})`);
  await stop();
  throw failed('did not answer within 5 s');
}
