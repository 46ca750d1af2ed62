/**
 * `npm run gateway`: one production gateway process (compose.yaml runs several behind a load
 * balancer, `npm run cluster` three on one port): no demo room, no local Redis. Any number may
 * listen on one GATEWAY_PORT (uWebSockets.js sets SO_REUSEPORT on Linux); GATEWAY_PORT=0 picks a
 * free port. Prints `listening on HOST:PORT`. Environment as in shared/config.ts, including
 *   GATEWAY_HOST     listen address (default 0.0.0.0: this is the container entrypoint)
 *   TRUSTED_PROXIES  comma-separated CIDRs of the load balancer(s), whose x-forwarded-for is believed
 *   ADMITTER         "off" to run this process without the admission loop (default on; any number may run it)
 * SIGTERM/SIGINT: stop listening, end WebSockets with 1001, quit Redis, exit.
 */
import { ConfigError, loadConfig } from '../shared/config.js';
import { startGateway } from '../waiting-room/server.js';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const host = config.gatewayHost ?? '0.0.0.0';
  const gateway = await startGateway(config, { host, trustedProxies: [...config.trustedProxies], admitter: config.admitter });
  // Several gateways may listen on one port (uWS sets SO_REUSEPORT): the kernel spreads connections.
  console.log(`listening on ${host}:${gateway.port} (gateway, pid ${process.pid})`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    gateway.close().then(() => process.exit(0), (err: unknown) => { console.error(err); process.exit(1); });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
