/**
 * `npm start`: the product on one machine with nothing set. Makes sure Redis is up (starting
 * one if needed), starts the gateway, creates (or updates) a demo room `demo` that opens about
 * 60 s from now with a pre-queue window, prints the URLs, and stops everything on Ctrl-C.
 */
import { ConfigError, loadConfig } from '../shared/config.js';
import { startGateway, type Gateway } from '../waiting-room/server.js';
import { ensureRedis, NoRedisError, type RedisHandle } from './redis.js';

const DEMO_ROOM = 'demo';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const stops: (() => Promise<void>)[] = [];
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => console.error(err));
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  const redis: RedisHandle = await ensureRedis(config.redisUrl, config.dataDir);
  stops.push(() => redis.stop());

  const gateway: Gateway = await startGateway(config, { host: process.env.GATEWAY_HOST || '127.0.0.1' });
  stops.push(() => gateway.close());

  // ---- checkout starts here (checkout/main.ts exports startCheckout(config), checkout/postgres.ts
  // ensurePostgres(config)); wired by the lead. A failure must not stop the gateway. ----

  const opensAt = new Date(Date.now() + 60_000).toISOString();
  const res = await fetch(`${gateway.url}/admin/rooms/${DEMO_ROOM}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${config.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ sale: 'demo', opensAt, prequeueSeconds: 120, admitRatePerMin: 60, maxActive: 100, paused: false, closed: false }),
  });
  if (!res.ok) throw new Error(`could not create the demo room: ${res.status} ${await res.text()}`);

  console.log(`
Waiting room running.
  queue page     ${gateway.url}/rooms/${DEMO_ROOM}   (room "${DEMO_ROOM}" opens at ${opensAt}, pre-queue open now)
  admin console  ${gateway.url}/admin   (admin token: ${config.adminToken})
  JWKS           ${gateway.url}/.well-known/jwks.json
Ctrl-C stops everything this command started.`);
}

main().catch((err: unknown) => {
  if (err instanceof NoRedisError || err instanceof ConfigError) console.error(err.message);
  else console.error(err);
  process.exit(1);
});
