/**
 * Which address a request counts against, and its subnet.
 *
 * The client IP is the socket peer, except when the peer is a proxy the operator trusts
 * (`trustedProxies` CIDRs): then `x-forwarded-for` is read from the right, skipping every hop that
 * is itself trusted, and the first untrusted hop is the client. A header sent by anyone else is
 * ignored, so a client cannot choose the address its buckets are counted against.
 */
import { AddressBytes, CidrList, formatAddress, parseAddress } from './cidr.js';

/**
 * The client address, canonical. `socketIp` as the server reports it (IPv4-mapped forms are
 * unwrapped); `forwardedFor` the raw `x-forwarded-for` value (several headers joined by commas).
 * Garbage in the header stops the walk at the last trusted hop, which then counts as the client.
 */
export function resolveClientIp(socketIp: string, forwardedFor: string | undefined, trusted: CidrList): string {
  const a = resolveClientAddress(socketIp, forwardedFor, trusted);
  return a ? formatAddress(a) : socketIp;
}

/** As `resolveClientIp`, as bytes; null only when the socket address itself is not one. */
export function resolveClientAddress(socketIp: string, forwardedFor: string | undefined, trusted: CidrList): AddressBytes | null {
  const peer = parseAddress(socketIp);
  if (!peer || trusted.size === 0 || !forwardedFor || !trusted.has(peer)) return peer;
  let current: AddressBytes = peer;
  const hops = forwardedFor.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = parseAddress(hops[i]!);
    if (!hop) break;
    current = hop;
    if (!trusted.has(hop)) break;
  }
  return current;
}

/** The subnet a client IP shares its bucket with: IPv4 /24 or IPv6 /64, as CIDR text. */
export function subnetOf(ip: string): string {
  const b = parseAddress(ip);
  return b ? subnetOfAddress(b) : ip;
}

export function subnetOfAddress(b: AddressBytes): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.0/24`;
  const net = new Uint8Array(16);
  net.set(b.subarray(0, 8));
  return `${formatAddress(net)}/64`;
}
