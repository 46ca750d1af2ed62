/**
 * Bot defence: the seam in the gateway's join path (CONTRACT.md sections 1 and 4).
 *
 * The join handler copies what it needs from the request synchronously, then calls
 * `beforeJoin`. Everything that can be decided without Redis happens here (client IP
 * behind trusted proxies, allow/block lists, header oddities, CAPTCHA verification when a
 * token came with the join). The token buckets and the velocity part of the suspicion
 * score run inside the join script itself (lua/joinBatch), so a join that passes the
 * defences still makes one trip to Redis.
 *
 * OWNER: the bot-defence work (issue 4). Until it lands this is a pass-through that
 * resolves the client IP from the socket only.
 */
import type { RoomConfig } from '../room-config.js';

export interface JoinContext {
  room: RoomConfig;
  /** The TCP peer's address as text (IPv4 dotted or IPv6). */
  socketIp: string;
  /** Request headers, lower-cased names, copied synchronously from the uWS request. */
  headers: Readonly<Record<string, string>>;
  visitorId: string;
  /** True when the visitor id was minted for this request (no valid cookie or header). */
  newVisitor: boolean;
  captchaToken?: string;
  now: number;
}

export type PreJoinVerdict =
  | {
      kind: 'continue';
      /** The client IP the buckets count against. */
      ip: string;
      /** Its IPv4 /24 or IPv6 /64, as text (e.g. `203.0.113.0/24`). */
      subnet: string;
      /** On the allow list: the join script skips buckets and CAPTCHA. */
      allowListed: boolean;
      /** 0-100 from what Node can see (headers); the script adds velocity. */
      headerScore: number;
      /** The visitor passed a CAPTCHA (just now, or remembered). */
      captchaPassed: boolean;
      /** Set-Cookie header values to add to the response (e.g. a remembered pass). */
      setCookies: string[];
    }
  | { kind: 'blocked' }
  | { kind: 'captcha_failed' }
  | { kind: 'rate_limited'; retryAfterSeconds: number };

export interface Defence {
  /** The client IP for any route (socket address unless a trusted proxy forwarded it). */
  clientIp(socketIp: string, headers: Readonly<Record<string, string>>, room?: RoomConfig): string;
  beforeJoin(ctx: JoinContext): Promise<PreJoinVerdict>;
  close(): Promise<void>;
}

export function subnetOf(ip: string): string {
  if (ip.includes(':')) {
    const parts = ip.split(':');
    return `${parts.slice(0, 4).join(':')}::/64`;
  }
  const o = ip.split('.');
  return `${o[0]}.${o[1]}.${o[2]}.0/24`;
}

export function createDefence(): Defence {
  return {
    clientIp: (socketIp) => socketIp,
    async beforeJoin(ctx) {
      return {
        kind: 'continue', ip: ctx.socketIp, subnet: subnetOf(ctx.socketIp), allowListed: false,
        headerScore: 0, captchaPassed: false, setCookies: [],
      };
    },
    async close() {},
  };
}
