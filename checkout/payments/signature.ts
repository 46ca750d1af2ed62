/** Webhook signatures: HMAC-SHA256 over the raw body, hex, in header `x-signature`. */
import crypto from 'node:crypto';

export function signBody(secret: string, body: Buffer | string): string {
  return crypto.createHmac('sha256', secret).update(body).digest('hex');
}

export function signatureMatches(secret: string, body: Buffer, header: string | undefined): boolean {
  if (typeof header !== 'string' || !/^[0-9a-f]{64}$/i.test(header)) return false;
  const expected = crypto.createHmac('sha256', secret).update(body).digest();
  return crypto.timingSafeEqual(expected, Buffer.from(header, 'hex'));
}
