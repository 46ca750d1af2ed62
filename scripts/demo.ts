/**
 * The demo drop that `npm start` and `npm run cluster` set up: a fresh sale at checkout and the
 * room `demo` in front of it, opening about 60 s from now with a two-minute pre-queue. Every run
 * gets a fresh demo: the room's keys are dropped first (a room that already opened cannot be moved
 * back to a pre-queue) and the sale is new, so nothing sold in an earlier run shows.
 */
import type { Config } from '../shared/config.js';
import { roomPrefix } from '../shared/keys.js';
import { createRedisClient, dropPrefix } from '../shared/redis.js';

export const DEMO_ROOM = 'demo';
export const DEMO_NAME = 'Winter Sneaker Drop';

export interface Demo {
  room: string;
  sale: string;
  opensAt: string;
}

/** Empty the demo room's keys and pick this run's sale id and opening time. */
export async function freshDemo(config: Config): Promise<Demo> {
  const admin = createRedisClient(config);
  try {
    await dropPrefix(admin, roomPrefix(config.redisPrefix, DEMO_ROOM));
  } finally {
    admin.disconnect();
  }
  return {
    room: DEMO_ROOM,
    sale: `demo-${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}`,
    opensAt: new Date(Date.now() + 60_000).toISOString(),
  };
}

const adminHeaders = (config: Config) => ({ authorization: `Bearer ${config.adminToken}`, 'content-type': 'application/json' });

/** PUT the demo sale at checkout (100 units at EUR 49, a day long); returns its checkout page URL. */
export async function putDemoSale(config: Config, checkoutUrl: string, demo: Demo): Promise<string> {
  const res = await fetch(`${checkoutUrl}/admin/sales/${demo.sale}`, {
    method: 'PUT',
    headers: adminHeaders(config),
    body: JSON.stringify({ name: DEMO_NAME, priceCents: 4900, currency: 'EUR', total: 100, startsAt: demo.opensAt, endsAt: new Date(Date.now() + 86_400_000).toISOString() }),
  });
  if (!res.ok) throw new Error(`could not create the demo sale: ${res.status} ${await res.text()}`);
  return `${checkoutUrl}/sales/${demo.sale}`;
}

/** PUT the demo room at the gateway, sending admitted shoppers to `salePage`. */
export async function putDemoRoom(config: Config, gatewayUrl: string, demo: Demo, salePage: string): Promise<void> {
  const res = await fetch(`${gatewayUrl}/admin/rooms/${demo.room}`, {
    method: 'PUT',
    headers: adminHeaders(config),
    body: JSON.stringify({ name: DEMO_NAME, sale: demo.sale, checkoutUrl: salePage, opensAt: demo.opensAt, prequeueSeconds: 120, admitRatePerMin: 60, maxActive: 100, paused: false, closed: false }),
  });
  if (!res.ok) throw new Error(`could not create the demo room: ${res.status} ${await res.text()}`);
}
