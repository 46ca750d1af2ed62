/**
 * `npm run cluster`: a rehearsal of production on one machine, no Docker (docs/api.md section 6):
 * a Redis Cluster of three masters with a replica each, from the `redis-server` on the PATH (data
 * under DATA_DIR/cluster), GATEWAYS gateway processes (default 3) sharing GATEWAY_PORT (uWS sets
 * SO_REUSEPORT: the kernel spreads connections), one `npm run checkout` with CHECKOUTS workers
 * (default 2) sharing CHECKOUT_PORT (node:cluster), Postgres as `npm start` finds or starts it,
 * and the demo room (scripts/rehearsal.ts). Prints the URLs and every process id; Ctrl-C stops
 * everything it started, by process id. Each process's own lines are printed with its name
 * (LOG_LEVEL=warn by default here, so the terminal stays readable).
 */
import { ConfigError } from '../shared/config.js';
import { describeError } from '../shared/errors.js';
import { stopsOnSignals } from './stops.js';
import { startRehearsal } from './rehearsal.js';

const { stops, stopAll } = stopsOnSignals('stopping everything this command started…');

async function main(): Promise<void> {
  const r = await startRehearsal({ env: process.env, stops, say: (line) => console.log(line) });
  const { config, redis, demo } = r;
  console.log(`
Rehearsal running: ${config.gateways} gateways on one port, ${config.checkouts} checkout workers on one port, Redis Cluster, Postgres.
  queue page     ${r.gatewayUrl}/rooms/${demo.room}   (opens at ${demo.opensAt}, pre-queue open now)
  admin console  ${r.gatewayUrl}/admin   (admin token: ${config.adminToken})
  checkout       ${r.salePage}
  Redis Cluster  ${redis.seeds}   (3 masters + 3 replicas, pids ${redis.nodes.map((n) => n.pid).join(' ')})
  gateways       pids ${r.gateways.map((s) => s.pid).join(' ')}
  checkout       primary pid ${r.checkout.pid}
Ctrl-C stops everything this command started.`);
}

main().catch((err: unknown) => {
  console.error(`npm run cluster failed: ${err instanceof ConfigError ? err.message : describeError(err)}`);
  void stopAll(1);
});
