/**
 * The peer a store would otherwise deploy: an mqtt.js subscriber on mosquitto that writes every
 * message into SQLite in batched transactions (one per event-loop turn, as the hub does). Runs as a
 * child process; reports its committed count when asked.
 */
import Database from 'better-sqlite3';
import mqtt from 'mqtt';

interface Start {
  url: string;
  file: string;
}

async function main(start: Start): Promise<void> {
  const db = new Database(start.file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  // The hub's journal table (hub/store/migrations.ts): the same row for every message, so both
  // targets do the same durable work. The device id is the topic's second level, as the ACL has it.
  db.exec(`CREATE TABLE IF NOT EXISTS device_messages (
    id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, topic TEXT NOT NULL,
    payload BLOB NOT NULL, qos INTEGER NOT NULL, received_at INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS device_messages_received_at ON device_messages (received_at)`);
  const insert = db.prepare('INSERT INTO device_messages (device_id, topic, payload, qos, received_at) VALUES (?, ?, ?, ?, ?)');
  let queue: [string, Buffer, number][] = [];
  let committed = 0;
  let lastCommitAt = 0;
  const write = db.transaction((batch: [string, Buffer, number][]) => {
    const now = Date.now();
    for (const [topic, payload, qos] of batch) insert.run(topic.split('/', 2)[1] ?? '', topic, payload, qos, now);
  });
  const flush = () => {
    const batch = queue;
    queue = [];
    write(batch);
    committed += batch.length;
    lastCommitAt = performance.now();
  };
  const client = await mqtt.connectAsync(start.url, { clientId: 'peer-subscriber', clean: true, reconnectPeriod: 0 });
  client.on('message', (topic, payload, packet) => {
    if (queue.length === 0) setImmediate(flush);
    queue.push([topic, payload, packet.qos]);
  });
  await client.subscribeAsync('devices/#', { qos: 1 });
  process.on('message', (msg: { cmd: string }) => {
    if (msg.cmd === 'count') process.send?.({ committed, lastCommitAt: lastCommitAt + performance.timeOrigin });
    if (msg.cmd === 'stop') client.end(true, {}, () => process.exit(0));
  });
  process.send?.({ ready: true });
}

process.once('message', (start: Start) => {
  main(start).catch((err: Error) => {
    process.stderr.write(`peer subscriber failed: ${err.message}\n`);
    process.exit(1);
  });
});
