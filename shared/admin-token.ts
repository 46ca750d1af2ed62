/**
 * The operator routes' check, the same on both services (docs/api.md section 4):
 * `authorization: Bearer <ADMIN_TOKEN>`, compared in constant time. Both sides are hashed
 * first, so the time taken depends neither on where the strings differ nor on their lengths.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** True when `authorization` is `Bearer <adminToken>` exactly (an empty token never matches). */
export function isAdminAuthorization(adminToken: string, authorization: string | undefined): boolean {
  const given = typeof authorization === 'string' && authorization.startsWith('Bearer ') ? authorization.slice(7) : '';
  const same = timingSafeEqual(sha256(given), sha256(adminToken));
  return same && given.length > 0 && adminToken.length > 0;
}
