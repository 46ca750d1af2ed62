/**
 * The gateway as a server under test (run inside bench/lib/server-child.ts): startGateway as
 * `npm start` runs it (its default, full bot defence), pino at warn, and
 * commands the benchmark drives over IPC: one admission step then one position round at a
 * stamped time, and the join-batch sizes the gateway observed.
 */
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { loadConfig } from '../../shared/config.js';
import { startGateway } from '../../waiting-room/server.js';
import type { Started } from './server-child.js';

export interface GatewayTargetOptions {
  env: Record<string, string>;
  /** Run the admission loop (default true); the fan-out phase turns it off and steps by hand. */
  admitter?: boolean;
}

const wallNow = () => performance.timeOrigin + performance.now();

export async function startGatewayTarget(opts: GatewayTargetOptions): Promise<Started> {
  const config = loadConfig(opts.env);
  const gw = await startGateway(config, { port: 0, admitter: opts.admitter ?? true, logger: pino({ level: 'warn' }) });
  return {
    port: gw.port,
    close: () => gw.close(),
    commands: {
      /** T = now; one admission step; one position round. Answers the times (wall-clock ms). */
      async admitAndPublish() {
        const t = wallNow();
        const admitted = await gw.admitOnce!();
        const tRound = wallNow();
        await gw.positionsOnce!();
        return { t, admitted, tRound, tSent: wallNow() };
      },
      /** Join script calls and joins placed since start, from the gateway's own histogram. */
      async joinBatches() {
        const m = await gw.metrics!.joinBatch.get();
        const sum = m.values.find((v) => v.metricName === 'wr_join_batch_size_sum')?.value ?? 0;
        const count = m.values.find((v) => v.metricName === 'wr_join_batch_size_count')?.value ?? 0;
        return { calls: count, joins: sum };
      },
    },
  };
}
