/**
 * The Redis client both services use. Clients are built by the caller at start-up,
 * never at import. Auto-pipelining batches the commands of one event-loop turn into
 * one round trip, which matters under the join and admission load.
 *
 * `createRedisClient(config)` is the one constructor the services call: one Redis at REDIS_URL,
 * or, when REDIS_CLUSTER_NODES is set, an ioredis Cluster on those seeds. Both speak the same
 * commands, scripts (defineCommand), pipelines and MULTI; on a cluster every key of one call must
 * share a hash tag (every room's keys carry `{room}`).
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from './config.js';

export function createRedis(url: string, opts: RedisOptions = {}): Redis {
  return new Redis(url, {
    enableAutoPipelining: true,
    maxRetriesPerRequest: 2,
    lazyConnect: false,
    ...opts,
  });
}

/**
 * A Redis Cluster client on `nodes`. A master that dies leaves its slots without an answer
 * until its replica is promoted (a few seconds with `cluster-node-timeout` 2000): every command
 * times out after `commandTimeout` (1 s) instead of waiting, so a route answers 503 meanwhile, and
 * the client refreshes the slot map every second and on every MOVED, so it finds the promoted
 * replica by itself. Sharded subscribers (one connection per master) carry SSUBSCRIBE.
 */
export function createCluster(nodes: readonly { host: string; port: number }[], opts: RedisOptions = {}, clusterOpts: ClusterOptions = {}): Cluster {
  const { enableAutoPipelining = true, ...redisOptions } = opts;
  return new Cluster(nodes.map((n) => ({ host: n.host, port: n.port })), {
    enableAutoPipelining,
    shardedSubscribers: true,
    slotsRefreshInterval: 1000,
    slotsRefreshTimeout: 1000,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
    redisOptions: { commandTimeout: 1000, connectTimeout: 1000, maxRetriesPerRequest: 2, ...redisOptions },
    ...clusterOpts,
  });
}

/**
 * The services' client from config: a Cluster when `redisClusterNodes` is set, else one Redis.
 * Typed as `Redis`: ioredis's Cluster implements the same command interface (commands, custom
 * scripts, pipeline, multi, pub/sub), which is all the services use; the one difference that
 * matters, SCAN covering one node, is handled in `dropPrefix`.
 */
export function createRedisClient(config: Pick<Config, 'redisUrl' | 'redisClusterNodes'>, opts: RedisOptions = {}): Redis {
  if (config.redisClusterNodes.length > 0) return createCluster(config.redisClusterNodes, opts) as unknown as Redis;
  return createRedis(config.redisUrl, opts);
}

/** True when `redis` is an ioredis Cluster client. */
export function isCluster(redis: Redis | Cluster): redis is Cluster {
  return (redis as { isCluster?: boolean }).isCluster === true;
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

/**
 * Delete every key under `prefix:` (SCAN + UNLINK in batches; never KEYS, never blocking Redis).
 * On a cluster SCAN covers one node, so each master is scanned, and keys are unlinked one slot at a
 * time. For tests and `npm start`'s demo reset, never a request path.
 */
export async function dropPrefix(redis: Redis | Cluster, prefix: string): Promise<number> {
  if (isCluster(redis)) {
    let dropped = 0;
    for (const node of redis.nodes('master')) dropped += await dropPrefix(node, prefix);
    return dropped;
  }
  let cursor = '0';
  let dropped = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    // One UNLINK per key: on a cluster node the keys of one batch span many slots (CROSSSLOT).
    if (keys.length) {
      const p = redis.pipeline();
      for (const k of keys) p.unlink(k);
      for (const [, n] of (await p.exec()) ?? []) dropped += Number(n ?? 0);
    }
  } while (cursor !== '0');
  return dropped;
}
