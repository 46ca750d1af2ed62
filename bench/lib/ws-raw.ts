/**
 * A minimal WebSocket client for holding many idle sockets cheaply: the upgrade over a raw
 * TCP socket, unmasked server frames parsed just enough to hand each text message on, pings
 * answered. Much less work per message than the `ws` package, so when 20,000 of them receive
 * one broadcast, the time measured is mostly the server's and the kernel's, not the clients'.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';

const HEADER_END = Buffer.from('\r\n\r\n');

export class RawWs {
  private sock: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private upgraded = false;
  open: Promise<void>;
  closed = false;

  constructor(
    port: number, host: string, path: string, localAddress: string, headers: Record<string, string>,
    private onText: (text: Buffer) => void,
  ) {
    this.sock = net.connect({ port, host, localAddress, noDelay: true });
    const key = randomBytes(16).toString('base64');
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    this.sock.write(`GET ${path} HTTP/1.1\r\nhost: ${host}:${port}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n` +
      `sec-websocket-key: ${key}\r\nsec-websocket-version: 13\r\n${extra}\r\n`);
    this.open = new Promise((resolve, reject) => {
      this.onUpgrade = (err) => (err ? reject(err) : resolve());
      this.sock.once('error', reject);
      this.sock.once('close', () => reject(new Error('closed before upgrade')));
    });
    this.sock.on('data', (d) => this.onData(d));
    this.sock.on('error', () => { this.closed = true; });
    this.sock.on('close', () => { this.closed = true; });
  }

  private onUpgrade: (err?: Error) => void = () => undefined;

  close(): void {
    this.closed = true;
    this.sock.destroy();
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (!this.upgraded) {
      const end = this.buf.indexOf(HEADER_END);
      if (end < 0) return;
      const status = this.buf.toString('latin1', 9, 12);
      if (status !== '101') {
        this.onUpgrade(new Error(`upgrade answered ${this.buf.toString('latin1', 0, Math.min(end, 300))}`));
        this.close();
        return;
      }
      this.upgraded = true;
      this.buf = this.buf.subarray(end + 4);
      this.onUpgrade();
    }
    while (this.buf.length >= 2) {
      const op = this.buf[0]! & 0x0f;
      let len = this.buf[1]! & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (this.buf.length < at + len) return;
      const payload = this.buf.subarray(at, at + len);
      this.buf = this.buf.subarray(at + len);
      if (op === 0x1 || op === 0x2) this.onText(payload);
      else if (op === 0x9) this.sendControl(0xa, payload);
      else if (op === 0x8) this.close();
    }
  }

  /** A masked control frame (clients must mask; a zero key leaves the payload as is). */
  private sendControl(op: number, payload: Buffer): void {
    const head = Buffer.from([0x80 | op, 0x80 | payload.length, 0, 0, 0, 0]);
    this.sock.write(Buffer.concat([head, payload]));
  }
}
