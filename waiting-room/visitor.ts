/**
 * Visitor ids: 128 random bits plus an HMAC-SHA256 tag (VISITOR_SECRET), as `<id>.<tag>`
 * in base64url. A client cannot choose another's id; a forged or unsigned value is ignored.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { randomChunk } from './random.js';

export const VISITOR_COOKIE = 'wr_vid';

function tag(secret: string, id: string): string {
  return createHmac('sha256', secret).update(id).digest().subarray(0, 16).toString('base64url');
}

export function mintVisitorId(secret: string): string {
  const id = randomChunk(16).toString('base64url');
  return `${id}.${tag(secret, id)}`;
}

export function isValidVisitorId(secret: string, value: string | undefined): value is string {
  if (!value || value.length !== 45) return false;
  const dot = value.indexOf('.');
  if (dot !== 22) return false;
  const expected = Buffer.from(tag(secret, value.slice(0, 22)));
  const given = Buffer.from(value.slice(23));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export function visitorCookie(vid: string, secure: boolean): string {
  return `${VISITOR_COOKIE}=${vid}; HttpOnly; SameSite=Lax; Path=/; Max-Age=2592000${secure ? '; Secure' : ''}`;
}
