/** Prometheus metrics of one gateway (its own registry, so several gateways can share a process). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics(defaults = false) {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    joins: new Counter({ name: 'wr_joins_total', help: 'Join attempts by outcome', labelNames: ['room', 'outcome'], registers }),
    admitted: new Counter({ name: 'wr_admitted_total', help: 'Visitors admitted by this process', labelNames: ['room'], registers }),
    queued: new Gauge({ name: 'wr_queued', help: 'Visitors waiting (tickets issued and not admitted, or in the pre-queue)', labelNames: ['room'], registers }),
    admittedThrough: new Gauge({ name: 'wr_admitted_through', help: 'Highest ticket admitted', labelNames: ['room'], registers }),
    active: new Gauge({ name: 'wr_active', help: 'Admitted visitors counting against maxActive', labelNames: ['room'], registers }),
    wsClients: new Gauge({ name: 'wr_ws_clients', help: 'Open WebSocket clients on this process', registers }),
    admissionLag: new Histogram({
      name: 'wr_admission_lag_seconds', help: 'From an admission tick starting to its admitted messages being published',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2], registers,
    }),
    joinBatch: new Histogram({ name: 'wr_join_batch_size', help: 'Joins per join script call', buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500], registers }),
    positionFanout: new Histogram({
      name: 'wr_position_fanout_seconds', help: 'Time to send one round of position messages to every socket of a room',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

type JoinsChild = ReturnType<Metrics['joins']['labels']>;
const joinChildren = new WeakMap<Metrics['joins'], Map<string, JoinsChild>>();

/**
 * Count one join attempt by outcome: the labelled child is looked up once per room and outcome
 * (prom-client hashes the label set on every `inc({..})`, a measurable share of a join).
 */
export function countJoin(metrics: Metrics, room: string, outcome: string): void {
  let children = joinChildren.get(metrics.joins);
  if (!children) joinChildren.set(metrics.joins, (children = new Map()));
  const key = `${room}\n${outcome}`;
  let c = children.get(key);
  if (!c) {
    if (children.size > 10_000) children.clear();
    children.set(key, (c = metrics.joins.labels(room, outcome)));
  }
  c.inc();
}
