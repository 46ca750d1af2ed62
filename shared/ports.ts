/** Local TCP ports: the one helper the start scripts, the process tools and the tests share. */
import net from 'node:net';

/** A port free on 127.0.0.1 right now (listen on 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
