/** Raw HTTP over a socket, for requests fetch() would refuse or rewrite (malformed escapes, odd headers). */
import net from 'node:net';

export interface RawAnswer { status: number; headers: Record<string, string>; body: string }

/**
 * Send `head` (request line and headers, without the blank line) and `body`; resolves with the
 * parsed answer, or status 0 when the server closed without one or gave none within `ms`.
 */
export function raw(port: number, head: string, body = '', ms = 5000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(parse(Buffer.concat(chunks).toString('utf8')));
    };
    const timer = setTimeout(finish, ms);
    sock.on('connect', () => sock.write(`${head}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`));
    sock.on('data', (d) => {
      chunks.push(d);
      const a = parse(Buffer.concat(chunks).toString('utf8'));
      if (a.status === 101 || (a.status && Buffer.byteLength(a.body) >= Number(a.headers['content-length'] ?? Infinity))) finish();
    });
    sock.on('close', finish);
    sock.on('error', finish);
  });
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
  return { status: Number(/^HTTP\/1\.\d (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0), headers, body: text.slice(end + 4) };
}
