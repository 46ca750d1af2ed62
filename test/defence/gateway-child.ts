/**
 * A gateway in a process of its own, for tests that need two processes on one Redis prefix.
 * argv[2] is the environment as JSON. Prints `{"url": ...}` once listening; stops when its stdin
 * closes (the parent went away), on SIGTERM, or after 120 s at the latest.
 */
import { loadConfig } from '../../shared/config.js';
import { createRedis } from '../../shared/redis.js';
import { createDefence } from '../../waiting-room/defence/index.js';
import { startGateway } from '../../waiting-room/server.js';

const config = loadConfig(JSON.parse(process.argv[2] ?? '{}') as Record<string, string>);
const redis = createRedis(config.redisUrl);
const gw = await startGateway(config, { port: 0, defence: createDefence(config, redis) });
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await gw.close();
  redis.disconnect();
  process.exit(0);
};
process.stdout.write(`${JSON.stringify({ url: gw.url })}\n`);
process.stdin.on('end', stop).resume();
process.on('SIGTERM', stop);
setTimeout(stop, 120_000).unref();
