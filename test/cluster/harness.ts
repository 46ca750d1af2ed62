/**
 * A real Redis Cluster for a test: three masters (one replica each when asked, for failover), on
 * ports picked at run time, data in a temp directory; stopped and deleted at teardown, even when the
 * test fails. `backends` runs a test body against one Redis and against a cluster.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRedisCluster, type RedisCluster } from '../../scripts/redis-cluster.js';

interface Teardown { teardown(fn: () => unknown): void }

export async function redisCluster(t: Teardown, opts: { replicas?: number } = {}): Promise<RedisCluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wr-cluster-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cluster = await startRedisCluster({ dir, masters: 3, replicas: opts.replicas ?? 0 });
  t.teardown(() => cluster.stop());
  return cluster;
}

