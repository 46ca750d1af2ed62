/** Raw HTTP over a socket, for requests fetch() would refuse or rewrite (malformed escapes, odd headers). */
import net from 'node:net';

export interface RawAnswer { status: number; headers: Record<string, string>; body: string }

/** How an exchange ended: a whole answer, the server closed first, or nothing more came within the wait. */
export type RawEnd = 'answered' | 'closed' | 'timeout';

/**
 * Send `head` (request line and headers, without the blank line) and `body`; resolves with the
 * parsed answer, or status 0 when the server closed without one or gave none within `ms`.
 */
export async function raw(port: number, head: string, body = '', ms = 5000): Promise<RawAnswer> {
  const { status, headers, body: text } = await rawBytes(port, Buffer.from(`${head}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`), ms);
  return { status, headers, body: text };
}

/**
 * Send `bytes` exactly as given (the caller writes the whole request, its framing included);
 * resolves at the first whole answer (or a 101), when the server closes, or after `ms`.
 */
export function rawBytes(port: number, bytes: Buffer, ms = 5000): Promise<RawAnswer & { end: RawEnd }> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (end: Exclude<RawEnd, 'answered'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const a = parse(Buffer.concat(chunks).toString('utf8'));
      resolve({ ...a, end: complete(a) ? 'answered' : end });
    };
    const timer = setTimeout(() => finish('timeout'), ms);
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (d) => {
      chunks.push(d);
      if (complete(parse(Buffer.concat(chunks).toString('utf8')))) finish('closed');
    });
    sock.on('close', () => finish('closed'));
    sock.on('error', () => finish('closed'));
  });
}

function complete(a: RawAnswer): boolean {
  return a.status === 101 || (a.status > 0 && Buffer.byteLength(a.body) >= Number(a.headers['content-length'] ?? Infinity));
}

function parse(text: string): RawAnswer {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, headers: {}, body: text };
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  // A declared length ends the body: bytes after it are a second answer (a pipelined request's).
  const length = Number(headers['content-length'] ?? NaN);
  const rest = text.slice(end + 4);
  const body = Number.isInteger(length) && Buffer.byteLength(rest) > length ? Buffer.from(rest).subarray(0, length).toString('utf8') : rest;
  return { status: Number(/^HTTP\/1\.\d (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0), headers, body };
}
