/**
 * Make sure a Redis answers at REDIS_URL: if none does and `redis-server` is on the PATH, start
 * one for this run (data under `<dataDir>/redis`, same port as the URL) and stop it on request.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { redisAnswers } from '../shared/redis.js';

export interface RedisHandle { started: boolean; stop(): Promise<void> }

export class NoRedisError extends Error {
  override name = 'NoRedisError';
}

export async function ensureRedis(redisUrl: string, dataDir: string, log: (line: string) => void = console.log, binary = 'redis-server'): Promise<RedisHandle> {
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
  const child: ChildProcess = spawn(binary, ['--bind', '127.0.0.1', '--port', port, '--dir', dir, '--save', '60 1000', '--appendonly', 'no'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; i < 50; i++) {
    if (await redisAnswers(redisUrl, 200)) {
      log(`No Redis was running at ${redisUrl}: started redis-server (pid ${child.pid}, data in ${dir}) for this run.`);
      return {
        started: true,
        stop: () => new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
      };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGTERM');
  throw new NoRedisError(`redis-server did not answer on port ${port} within 5 s.`);
}
