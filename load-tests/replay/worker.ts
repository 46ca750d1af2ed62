/**
 * Child-process entry of the replay driver (forked with tsx): receives one ShardJob over IPC,
 * reports progress every 250 ms and sends its ShardResult back, then exits.
 */
import { runShard, type ShardJob } from './shard.js';

process.once('message', (job: ShardJob) => {
  runShard(job, (p) => process.send?.({ type: 'progress', progress: p }))
    .then((result) => process.send?.({ type: 'result', result }, () => process.exit(0)))
    .catch((e: Error) => process.send?.({ type: 'error', message: e.stack ?? e.message }, () => process.exit(1)));
});
