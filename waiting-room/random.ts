/**
 * CSPRNG bytes from a pooled buffer: one randomBytes call per 8 KiB instead of one per visitor
 * id, token id or pre-queue key (a measurable share of the join path's CPU). Callers copy or
 * encode the bytes at once; the pool is refilled, never reused.
 */
import { randomBytes } from 'node:crypto';

const POOL_BYTES = 8192;
let pool = randomBytes(POOL_BYTES);
let offset = 0;

export function randomChunk(n: number): Buffer {
  if (n > POOL_BYTES) return randomBytes(n);
  if (offset + n > pool.length) { pool = randomBytes(POOL_BYTES); offset = 0; }
  const out = pool.subarray(offset, offset + n);
  offset += n;
  return out;
}
