/**
 * The Redis client both services use. Clients are built by the caller at start-up,
 * never at import. Auto-pipelining batches the commands of one event-loop turn into
 * one round trip, which matters under the join and admission load.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { keyPattern } from './keys.js';

export function createRedis(url: string, opts: RedisOptions = {}): Redis {
  return new Redis(url, {
    enableAutoPipelining: true,
    maxRetriesPerRequest: 2,
    lazyConnect: false,
    ...opts,
  });
}

/** True when Redis answers PING within `timeoutMs`. */
export async function redisAnswers(url: string, timeoutMs = 1000): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs });
  r.on('error', () => {});
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/** Delete every key under `prefix:` (SCAN + UNLINK in batches; never KEYS, never blocking Redis). */
export async function dropPrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let dropped = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', keyPattern(prefix), 'COUNT', 1000);
    cursor = next;
    if (keys.length) dropped += await redis.unlink(...keys);
  } while (cursor !== '0');
  return dropped;
}

/** Every key matching `pattern` (SCAN, never KEYS): for tests and tools, never a hot path. */
export async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return [...new Set(found)];
}
