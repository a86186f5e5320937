import fc from 'fast-check';
import t from 'tap';
import { type ItemEvent, RfidAggregator } from '../hub/inventory/rfid-aggregator.js';
import type { RfidReadEvent } from '../hub/sdk/events.js';

const SGTIN = '3074257BF7194E4000001A85';
const OPAQUE = 'E2801170200014CD9B5A08EC';
const ZONES: Record<number, string> = { 1: 'backroom', 2: 'shelf-a', 3: 'shelf-b' };

const read = (epc: string, antenna: number, time: number, rssi?: number): RfidReadEvent =>
  rssi === undefined ? { type: 'rfid.read', deviceId: 'r1', epc, antenna, time } : { type: 'rfid.read', deviceId: 'r1', epc, antenna, time, rssi };

const aggregator = (extra: ConstructorParameters<typeof RfidAggregator>[0] = {}) =>
  new RfidAggregator({ zoneOf: (device, antenna) => (device === 'r1' ? ZONES[antenna] : undefined), ...extra });

t.test('first read arrives, with the SGTIN decoded; other EPCs stay opaque', async (t) => {
  const agg = aggregator();
  const e = agg.ingest(read(SGTIN, 1, 1000, -50));
  t.match(e, { type: 'item.arrived', epc: SGTIN, zone: 'backroom', time: 1000, sgtin: { gtin14: '80614141123458', serial: '6789' } });
  const o = agg.ingest(read(OPAQUE, 2, 1000, -50));
  t.match(o, { type: 'item.arrived', epc: OPAQUE, zone: 'shelf-a' });
  t.notOk(o && 'sgtin' in o, 'no sgtin for a non-SGTIN EPC');
  t.equal(agg.ingest(read(SGTIN, 1, 1100, -51)), undefined, 'a repeat read in the same zone is quiet');
  t.equal(agg.zoneOfTag(SGTIN), 'backroom');
  t.equal(agg.size, 2);
});

t.test('reads from antennas in no zone are counted and ignored', async (t) => {
  const agg = aggregator();
  t.equal(agg.ingest(read(SGTIN, 9, 1000, -40)), undefined);
  t.equal(agg.ingest({ ...read(SGTIN, 1, 1000, -40), deviceId: 'other' }), undefined);
  t.equal(agg.counters.unzoned, 2);
  t.equal(agg.size, 0);
});

t.test('the default zone of a read is <device>:<antenna>', async (t) => {
  const agg = new RfidAggregator();
  t.match(agg.ingest(read(SGTIN, 4, 0, -50)), { zone: 'r1:4' });
});

t.test('a move needs two reads in the new zone and an average 6 dB stronger', async (t) => {
  const agg = aggregator();
  agg.ingest(read(SGTIN, 1, 0, -60));
  agg.ingest(read(SGTIN, 1, 10, -60));
  t.equal(agg.ingest(read(SGTIN, 2, 20, -50)), undefined, 'one read in the new zone is not enough');
  t.match(agg.ingest(read(SGTIN, 2, 30, -50)), {
    type: 'item.moved',
    epc: SGTIN,
    zone: 'shelf-a',
    fromZone: 'backroom',
    time: 30,
    sgtin: { gtin14: '80614141123458' },
  });
  t.equal(agg.zoneOfTag(SGTIN), 'shelf-a');

  const b = aggregator();
  b.ingest(read(OPAQUE, 1, 0, -60));
  for (let i = 1; i <= 10; i++) t.equal(b.ingest(read(OPAQUE, 2, i, -55)), undefined, `5 dB better is not enough (read ${i})`);
  t.equal(b.zoneOfTag(OPAQUE), 'backroom');
});

t.test('the moving average forgets old reads after the window', async (t) => {
  const agg = aggregator({ rssiWindow: 4 });
  agg.ingest(read(SGTIN, 1, 0, -40));
  for (let i = 1; i <= 3; i++) agg.ingest(read(SGTIN, 2, i, -45)); // shelf-a: not 6 dB better than -40
  t.equal(agg.zoneOfTag(SGTIN), 'backroom');
  // backroom's window fills with weak reads; the -40 falls out of it
  for (let i = 4; i < 8; i++) agg.ingest(read(SGTIN, 1, i, -60));
  t.match(agg.ingest(read(SGTIN, 2, 9, -45)), { type: 'item.moved', zone: 'shelf-a' });
});

t.test('hold-off: no second move within 60 s of the last one', async (t) => {
  const agg = aggregator();
  agg.ingest(read(SGTIN, 1, 0, -70));
  agg.ingest(read(SGTIN, 2, 1000, -50));
  t.match(agg.ingest(read(SGTIN, 2, 2000, -50)), { type: 'item.moved', zone: 'shelf-a' });
  let moved: ItemEvent | undefined;
  let at = 0;
  for (let time = 3000; time <= 70_000 && !moved; time += 1000) {
    moved = agg.ingest(read(SGTIN, 3, time, -30));
    agg.ingest(read(SGTIN, 2, time, -50)); // keep shelf-a fresh so only RSSI decides
    at = time;
  }
  t.match(moved, { type: 'item.moved', fromZone: 'shelf-a', zone: 'shelf-b' });
  t.equal(at, 62_000, 'the first read 60 s after the move at 2 s');
});

t.test('a zone that stops reading the tag gives way (readers without RSSI)', async (t) => {
  const agg = aggregator();
  agg.ingest(read(OPAQUE, 1, 0));
  agg.ingest(read(OPAQUE, 1, 5000));
  t.equal(agg.ingest(read(OPAQUE, 2, 10_000)), undefined);
  t.equal(agg.ingest(read(OPAQUE, 2, 20_000)), undefined, 'backroom read it 15 s ago: still holds it');
  t.match(agg.ingest(read(OPAQUE, 2, 35_000)), { type: 'item.moved', zone: 'shelf-a', fromZone: 'backroom' }, 'backroom silent for 30 s');
});

t.test('departure after 600 s without a read, found by sweep; a later read arrives again', async (t) => {
  const agg = aggregator();
  agg.ingest(read(SGTIN, 1, 1000, -50));
  agg.ingest(read(SGTIN, 2, 5000, -40));
  agg.ingest(read(SGTIN, 2, 6000, -40));
  t.same(agg.sweep(600_999), [], 'not yet: last read at 6 s');
  const gone = agg.sweep(606_000);
  t.equal(gone.length, 1);
  t.match(gone[0], { type: 'item.departed', epc: SGTIN, zone: 'shelf-a', time: 606_000, lastSeen: 6000, sgtin: { serial: '6789' } });
  t.equal(agg.zoneOfTag(SGTIN), undefined);
  t.same(agg.sweep(700_000), [], 'departs once');
  t.match(agg.ingest(read(SGTIN, 3, 700_001, -70)), { type: 'item.arrived', zone: 'shelf-b' });
  t.equal(agg.ingest(read(SGTIN, 2, 700_002, -40)), undefined, 'statistics started over: one read in shelf-a is not enough');
  t.equal(agg.counters.arrived, 2);
  t.equal(agg.counters.departed, 1);
});

t.test('departed tags are forgotten after forgetAfterMs, bounding memory', async (t) => {
  const agg = aggregator({ departedAfterMs: 1000, forgetAfterMs: 10_000 });
  for (let i = 0; i < 100; i++) agg.ingest(read(`30${i.toString(16).padStart(22, '0')}`.toUpperCase(), 1, 0, -50));
  t.equal(agg.sweep(1000).length, 100);
  t.equal(agg.size, 100);
  agg.sweep(9_999);
  t.equal(agg.size, 100);
  agg.sweep(10_000);
  t.equal(agg.size, 0);
  t.equal(agg.counters.forgotten, 100);
});

t.test('throughput: well over 20,000 reads/s on one core', async (t) => {
  const agg = new RfidAggregator({ zoneOf: (_d, a) => ZONES[a] });
  const tags = Array.from({ length: 2000 }, (_, i) => `3074257BF7194E40${i.toString(16).padStart(8, '0')}`.toUpperCase());
  // build the reads first so only ingest() is timed
  const reads: RfidReadEvent[] = [];
  let seed = 1;
  // mulberry32
  const rand = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = 0; i < 300_000; i++) reads.push(read(tags[Math.floor(rand() * tags.length)]!, 1 + Math.floor(rand() * 3), i, -70 + rand() * 30));
  const started = process.hrtime.bigint();
  for (const r of reads) agg.ingest(r);
  agg.sweep(300_000);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const rate = reads.length / seconds;
  t.comment(`${Math.round(rate).toLocaleString('en')} reads/s`);
  t.ok(rate > 20_000, `rate ${Math.round(rate)} reads/s`);
  t.equal(agg.counters.arrived, 2000);
});

interface Op {
  kind: 'read' | 'sweep';
  epc: number;
  antenna: number;
  rssi: number;
  dt: number;
}

const DEPART = 100_000;
const HOLD = 60_000;

t.test('property: whatever the interleaving, each EPC arrives before it moves or departs, and departs only after the timeout', async (t) => {
  const op = fc.record({
    kind: fc.constantFrom<'read' | 'sweep'>('read', 'read', 'read', 'sweep'),
    epc: fc.integer({ min: 0, max: 4 }),
    antenna: fc.integer({ min: 1, max: 4 }),
    rssi: fc.integer({ min: -80, max: -30 }),
    dt: fc.oneof(fc.integer({ min: 0, max: 5_000 }), fc.integer({ min: 0, max: 150_000 })),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 400, size: 'max' }), (ops: Op[]) => {
      const agg = aggregator({ departedAfterMs: DEPART, holdOffMs: HOLD, forgetAfterMs: 400_000 });
      const epcs = [SGTIN, OPAQUE, '3034257BF400B7800004CB2F', 'AAAA', '3074257BF7194E4000001A86'];
      // the model: what each EPC's item events so far say
      const model = new Map<string, { present: boolean; zone: string; lastRead: number; lastMove: number }>();
      let now = 0;
      const check = (e: ItemEvent) => {
        const m = model.get(e.epc);
        if (e.type === 'item.arrived') {
          if (m?.present) throw new Error(`${e.epc} arrived twice`);
          model.set(e.epc, { present: true, zone: e.zone, lastRead: e.time, lastMove: -Infinity });
          return;
        }
        if (!m?.present) throw new Error(`${e.type} of ${e.epc} before it arrived`);
        if (e.type === 'item.moved') {
          if (e.fromZone !== m.zone || e.zone === m.zone) throw new Error(`bad move ${m.zone} -> ${e.fromZone}/${e.zone}`);
          if (e.time - m.lastMove < HOLD) throw new Error('moved within the hold-off');
          m.zone = e.zone;
          m.lastMove = e.time;
        } else {
          if (now - m.lastRead < DEPART) throw new Error(`${e.epc} departed ${now - m.lastRead} ms after its last read`);
          if (e.lastSeen !== m.lastRead || e.zone !== m.zone) throw new Error('departure reports the wrong last read or zone');
          m.present = false;
        }
      };
      for (const o of ops) {
        now += o.dt;
        if (o.kind === 'read') {
          const epc = epcs[o.epc]!;
          const e = agg.ingest(read(epc, o.antenna, now, o.rssi));
          if (ZONES[o.antenna] === undefined) {
            if (e) throw new Error('an unzoned read caused an event');
            continue;
          }
          if (e) check(e);
          const m = model.get(epc);
          if (!m?.present) throw new Error(`${epc} read but not present`);
          m.lastRead = now;
        } else {
          for (const e of agg.sweep(now)) check(e);
          for (const [epc, m] of model) if (m.present && now - m.lastRead >= DEPART) throw new Error(`${epc} overdue but still present`);
        }
      }
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass('500 interleavings');
});
