/**
 * The Redis client both services use. Clients are built by the caller at start-up,
 * never at import. Auto-pipelining batches the commands of one event-loop turn into
 * one round trip, which matters under the join and admission load.
 *
 * Through faults (docs/api.md section 6) a command must fail fast, never wait: a route that
 * needs Redis answers 503 within 2 s while Redis is away, and works again within 5 s of it
 * answering. So, once a client has connected:
 * - no offline queue: a command sent while disconnected fails at once (ioredis would otherwise
 *   hold it through every reconnect attempt, 10-15 s);
 * - a command timeout: a Redis that hangs (SIGSTOP, a saturated box) fails the command after
 *   `commandTimeout` instead of holding the request forever;
 * - reconnects every 50-500 ms, without end: back within half a second of Redis answering.
 * Before the first connection commands do wait (start-up with Redis still coming up), bounded by
 * `maxRetriesPerRequest` reconnect attempts.
 *
 * `createRedisClient(config)` is the one constructor the services call: one Redis at REDIS_URL,
 * or, when REDIS_CLUSTER_NODES is set, an ioredis Cluster on those seeds. Both speak the same
 * commands, scripts (defineCommand), pipelines and MULTI; on a cluster every key of one call must
 * share a hash tag (every room's keys carry `{room}`).
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from './config.js';
import { keyPattern } from './keys.js';
import { scripts } from './scripts.js';
import { perWindow } from './throttle.js';

/** The fault-handling options of every client (the cluster constructor reuses them per node). */
export const REDIS_FAULT_OPTIONS = Object.freeze({
  /**
   * ms a command may wait for its reply once sent. With auto-pipelining a command first waits for
   * the pipeline in flight, so a hung Redis answers a request in at most about twice this (1.5 s,
   * inside the contract's 2 s; measured 1.0-2.0 s with 1000).
   */
  commandTimeout: 750,
  /** ms a TCP connect may take before the attempt counts as failed. */
  connectTimeout: 1000,
  /** Reconnect attempts a command queued before the first connection survives. */
  maxRetriesPerRequest: 2,
  /** Delay before reconnect attempt `times` (ms): 50, 100, ... capped at 500; never gives up. */
  retryStrategy: (times: number): number => Math.min(50 * times, 500),
  /** The first connection is waited for; failFastOnceReady turns the queue off after it. */
  enableOfflineQueue: true,
} satisfies RedisOptions);

/**
 * After the client's first `ready`, commands sent while disconnected fail at once instead of
 * waiting in the offline queue. Returns the client.
 */
export function failFastOnceReady<T extends { once(event: 'ready', fn: () => void): unknown; options: { enableOfflineQueue?: boolean } }>(client: T): T {
  client.once('ready', () => { client.options.enableOfflineQueue = false; });
  return client;
}

/**
 * A client's `error` events, at most one per distinct message per `windowMs`: while a node is
 * away each reconnect attempt (every 50-500 ms, per connection; a cluster's sharded subscribers
 * too) raised one, and a gateway logged ~50 warnings a second through a failover
 * (test/cluster/failover-scope.test.ts). The next one let through after a quiet stretch says how
 * many were held back. Commands still fail on their own: these events only inform.
 */
export function rateLimitErrors<T extends { emit(event: string | symbol, ...args: any[]): boolean }>(client: T, windowMs = 5000): T {
  const pass = perWindow(windowMs);
  const emit = client.emit.bind(client);
  client.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
    if (event !== 'error') return emit(event, ...args);
    const err = args[0];
    const held = pass(err instanceof Error ? err.message : String(err));
    if (held === null) return true;
    if (!held || !(err instanceof Error)) return emit(event, ...args);
    const summary = new Error(`${err.message} (${held} more like it held back in the ${windowMs / 1000} s before)`);
    summary.name = err.name;
    return emit(event, summary);
  }) as T['emit'];
  return client;
}

export function createRedis(url: string, opts: RedisOptions = {}): Redis {
  return rateLimitErrors(failFastOnceReady(new Redis(url, {
    enableAutoPipelining: true,
    // The join script already carries a batch (every join of a room in one event-loop turn): sent
    // at once, it skips the auto-pipeline's deferred Pipeline (a measurable share of a join's CPU).
    autoPipeliningIgnoredCommands: [scripts().joinBatch.command],
    lazyConnect: false,
    ...REDIS_FAULT_OPTIONS,
    ...opts,
  })));
}

/**
 * True for an error that means "Redis is not answering now" (refused, closed, timed out, not
 * writeable, loading, a cluster without a master for the slot, a slot that moved under a
 * pipelined command — ioredis follows a MOVED for a lone command, but hands it to the caller when
 * it meets it inside a pipeline whose other commands were answered; it has refreshed its slot map
 * by then, so a retry goes to the new owner): the route answers 503 unavailable with Retry-After,
 * not 500.
 */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'MaxRetriesPerRequestError' || err.name === 'ClusterAllFailedError') return true;
  return /Command timed out|Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|max retries|^LOADING|^CLUSTERDOWN|^TRYAGAIN|^MASTERDOWN|^MOVED |^ASK |None of startup nodes/i.test(err.message);
}

/**
 * A Redis Cluster client on `nodes`. A master that dies leaves its slots without an answer
 * until its replica is promoted (a few seconds with `cluster-node-timeout` 2000): every command
 * fails at once (connection closed, CLUSTERDOWN) or times out after `commandTimeout`, never
 * retried on the dead master, so a route answers 503 meanwhile, and
 * the client refreshes the slot map every second and on every MOVED, so it finds the promoted
 * replica by itself. Sharded subscribers (one connection per master) carry SSUBSCRIBE.
 *
 * Script calls are left out of auto-pipelining: ioredis groups an auto-pipelined call by the slot
 * of its first argument, which for our scripts is the key count (numberOfKeys is given per call),
 * so two scripts on keys of different masters sent in one tick went into one pipeline and both
 * failed "All keys in the pipeline should belong to the same slots allocation group"
 * (redis/ioredis#2109). Every other command is grouped by its real first key and keeps it.
 */
export function createCluster(nodes: readonly { host: string; port: number }[], opts: RedisOptions = {}, clusterOpts: ClusterOptions = {}): Cluster {
  const { enableAutoPipelining = true, ...redisOptions } = opts;
  return rateLimitErrors(new Cluster(nodes.map((n) => ({ host: n.host, port: n.port })), {
    enableAutoPipelining,
    shardedSubscribers: true,
    slotsRefreshInterval: 1000,
    slotsRefreshTimeout: 1000,
    // No retry on a closed connection or CLUSTERDOWN: ioredis retries those every retryDelay ms up
    // to maxRedirections (16) times, all to the dead master until the failover, so a route hung
    // 3-4 s before answering (test/cluster/redis-failover.test.ts). The command fails at once
    // (isRedisUnavailable: 503), and a MOVED after the promotion is still followed.
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
    redisOptions: { ...REDIS_FAULT_OPTIONS, ...redisOptions },
    autoPipeliningIgnoredCommands: Object.values(scripts()).map((s) => s.command),
    ...clusterOpts,
  }));
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
    const [next, keys] = await redis.scan(cursor, 'MATCH', keyPattern(prefix), 'COUNT', 1000);
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
