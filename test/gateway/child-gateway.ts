/**
 * A gateway in a child process for the multi-process tests. Its clock is set by the parent over
 * IPC; `{cmd:'admit', now}` sets the clock and runs one admission tick, answering how many it admitted.
 */
import { loadConfig } from '../../shared/config.js';
import { startGateway } from '../../waiting-room/server.js';

let now = Number(process.env.TEST_CLOCK_START);
const config = loadConfig({ REDIS_PREFIX: process.env.REDIS_PREFIX, LOG_LEVEL: 'silent', ADMIN_TOKEN: process.env.ADMIN_TOKEN });
const gw = await startGateway(config, { port: 0, admitter: false, clock: () => now });
const send = (m: unknown) => process.send!(m);
process.on('message', async (m: { id: number; cmd: string; now?: number }) => {
  if (m.now !== undefined) now = m.now;
  if (m.cmd === 'admit') {
    await gw.refreshRooms!();
    send({ id: m.id, admitted: await gw.admitOnce!() });
  } else if (m.cmd === 'close') {
    await gw.close();
    send({ id: m.id, closed: true });
    process.disconnect();
  }
});
process.on('disconnect', () => { void gw.close().then(() => process.exit(0)); });
send({ ready: true, url: gw.url });
