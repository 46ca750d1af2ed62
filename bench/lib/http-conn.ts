/**
 * A minimal keep-alive HTTP/1.1 client connection for load generation: one request in
 * flight at a time, the request bytes prebuilt by the caller, the response parsed just
 * enough (status, content-length or chunked body). Cheaper per request than undici or
 * autocannon's client, so one load process drives more requests than the server under test
 * can serve.
 */
import net from 'node:net';

export interface Reply {
  status: number;
  /** The body, only when the connection was asked to keep bodies. */
  body?: string;
}

/** Source address number `i` spread over 127.0.0.0/8 (127.a.b.c, each octet 1..254). */
export function loopbackAddress(i: number): string {
  const c = (i % 254) + 1;
  const b = (Math.floor(i / 254) % 254) + 1;
  const a = (Math.floor(i / 254 / 254) % 254) + 1;
  return `127.${a}.${b}.${c}`;
}

export function buildRequest(method: string, host: string, path: string, headers: Record<string, string>, body?: string): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, `host: ${host}`, 'connection: keep-alive'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body !== undefined) lines.push(`content-length: ${Buffer.byteLength(body)}`);
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n' + (body ?? ''));
}

const HEADER_END = Buffer.from('\r\n\r\n');

export class HttpConn {
  private sock: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private pending: ((r: Reply | Error) => void) | null = null;
  ready: Promise<void>;
  closed = false;

  constructor(port: number, host: string, localAddress: string | undefined, private keepBodies = false) {
    this.sock = net.connect({ port, host, localAddress, noDelay: true });
    this.ready = new Promise((resolve, reject) => {
      this.sock.once('connect', () => resolve());
      this.sock.once('error', reject);
    });
    this.sock.on('data', (d) => this.onData(d));
    this.sock.on('error', (e) => this.fail(e));
    this.sock.on('close', () => this.fail(new Error('connection closed')));
  }

  /** Send one prebuilt request; resolves with the reply (never two in flight). */
  send(req: Buffer): Promise<Reply> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      this.pending = (r) => (r instanceof Error ? reject(r) : resolve(r));
      this.sock.write(req);
    });
  }

  close(): void {
    this.closed = true;
    this.sock.destroy();
  }

  private fail(e: Error): void {
    this.closed = true;
    const p = this.pending;
    this.pending = null;
    p?.(e);
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      const end = this.buf.indexOf(HEADER_END);
      if (end < 0) return;
      const head = this.buf.toString('latin1', 0, end);
      const status = Number(head.slice(9, 12));
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      let bodyStart = end + 4;
      let body: Buffer;
      let consumed: number;
      if (m) {
        const len = Number(m[1]);
        if (this.buf.length < bodyStart + len) return;
        body = this.buf.subarray(bodyStart, bodyStart + len);
        consumed = bodyStart + len;
      } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
        const parts: Buffer[] = [];
        let at = bodyStart;
        for (;;) {
          const nl = this.buf.indexOf('\r\n', at);
          if (nl < 0) return;
          const size = parseInt(this.buf.toString('latin1', at, nl), 16);
          if (this.buf.length < nl + 2 + size + 2) return;
          parts.push(this.buf.subarray(nl + 2, nl + 2 + size));
          at = nl + 2 + size + 2;
          if (size === 0) break;
        }
        body = Buffer.concat(parts);
        consumed = at;
      } else {
        body = Buffer.alloc(0);
        consumed = bodyStart;
      }
      const reply: Reply = { status };
      if (this.keepBodies) reply.body = body.toString('utf8');
      this.buf = this.buf.subarray(consumed);
      const p = this.pending;
      this.pending = null;
      p?.(reply);
    }
  }
}
