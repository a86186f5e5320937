/**
 * The PUBLISH fast path (publish-parser.ts) must be indistinguishable from mqtt-packet's parser:
 * random streams of packets of every kind, cut into random reads, give the same packets and the
 * same errors from both. Malformed input is left to mqtt-packet.
 */
import { createRequire } from 'node:module';
import fc from 'fast-check';
import mqtt from 'mqtt-packet';
import t from 'tap';
import { fastPublishParserClass, usePublishFastPath } from '../hub/broker/publish-parser.js';

const require = createRequire(import.meta.url);
type Parser = ReturnType<typeof mqtt.parser>;
const ParserClass = require('mqtt-packet/parser.js') as new () => Parser & { parser(opt?: object): Parser };
const Packet = require('mqtt-packet/packet.js') as new () => never;
const FastParser = fastPublishParserClass(ParserClass as never, Packet);
const originalParser = mqtt.parser;

interface Outcome {
  packets: unknown[];
  errors: string[];
}

function run(parser: Parser, chunks: Buffer[]): Outcome {
  const out: Outcome = { packets: [], errors: [] };
  parser.on('packet', (packet) => {
    // a copy of the payload: a view into the read would change if a later read reused its memory
    const p = packet as { payload?: Buffer | null };
    out.packets.push({ ...p, payload: p.payload ? Buffer.from(p.payload) : p.payload });
  });
  parser.on('error', (e: Error) => out.errors.push(e.message));
  for (const c of chunks) parser.parse(c);
  return out;
}

const topic = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }).filter((s) => !/[#+]/.test(s));
const publish = fc.record({
  cmd: fc.constant('publish' as const),
  topic,
  payload: fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)),
  qos: fc.constantFrom(0, 1, 2),
  retain: fc.boolean(),
  dup: fc.boolean(),
  messageId: fc.integer({ min: 1, max: 65535 }),
});
const other = fc.oneof(
  fc.constant({ cmd: 'pingreq' as const }),
  fc.integer({ min: 1, max: 65535 }).map((messageId) => ({ cmd: 'puback' as const, messageId })),
  fc.integer({ min: 1, max: 65535 }).map((messageId) => ({ cmd: 'pubrel' as const, messageId })),
  fc.record({
    cmd: fc.constant('subscribe' as const),
    messageId: fc.integer({ min: 1, max: 65535 }),
    subscriptions: fc.constant([{ topic: 'devices/a/#', qos: 1 as const }]),
  }),
  fc.record({ cmd: fc.constant('unsubscribe' as const), messageId: fc.integer({ min: 1, max: 65535 }), unsubscriptions: fc.constant(['devices/a/#']) }),
);
/** A stream of encoded packets, sometimes with a byte of garbage, cut at random offsets. */
const stream = fc
  .tuple(
    fc.array(fc.oneof({ weight: 4, arbitrary: publish }, { weight: 1, arbitrary: other }), { minLength: 1, maxLength: 30 }),
    fc.array(fc.integer({ min: 1, max: 600 }), { maxLength: 20 }),
    fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { nil: undefined }),
  )
  .map(([packets, cuts, garbage]) => {
    const bytes = Buffer.concat(packets.map((p) => mqtt.generate({ ...p, ...('qos' in p && p.qos === 0 ? { messageId: undefined } : {}) } as mqtt.Packet)));
    if (garbage) bytes[garbage[0] % bytes.length] = garbage[1];
    const chunks: Buffer[] = [];
    let at = 0;
    for (const cut of cuts) {
      if (at >= bytes.length) break;
      chunks.push(bytes.subarray(at, Math.min(bytes.length, at + cut)));
      at += cut;
    }
    if (at < bytes.length) chunks.push(bytes.subarray(at));
    return chunks;
  });

t.test('the fast path emits exactly what mqtt-packet emits, for any packets cut anywhere', async (t) => {
  let compared = 0;
  fc.assert(
    fc.property(stream, (chunks) => {
      const expected = run(new ParserClass().parser(), chunks);
      const actual = run(new FastParser().parser(), chunks);
      compared += expected.packets.length;
      t.strictSame(actual, expected);
      return true;
    }),
    { numRuns: 400 },
  );
  t.ok(compared > 1000, `${compared} packets compared`);
});

t.test('malformed PUBLISH headers get mqtt-packet errors', async (t) => {
  const bad = [
    Buffer.from([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]), // QoS 3
    Buffer.from([0x32, 0xff, 0xff, 0xff, 0xff, 0x01]), // a remaining length of five bytes
    Buffer.from([0x32, 0x03, 0x00, 0x09, 0x61]), // topic longer than the packet
  ];
  for (const b of bad) {
    const expected = run(new ParserClass().parser(), [b]);
    t.strictSame(run(new FastParser().parser(), [b]), expected, `same outcome for ${b.toString('hex')}`);
  }
  t.strictSame(run(new FastParser().parser(), [bad[0] as Buffer]).errors, ['Packet must not have both QoS bits set to 1']);
});

t.test('installed only for parsers made without options (aedes), once', async (t) => {
  usePublishFastPath();
  usePublishFastPath();
  t.not(mqtt.parser, originalParser, 'the export aedes calls is replaced');
  t.ok(mqtt.parser() instanceof ParserClass, "still mqtt-packet's Parser");
  t.equal(Object.getPrototypeOf(mqtt.parser()).constructor.name, 'FastPublishParser');
  t.equal(Object.getPrototypeOf(mqtt.parser({ protocolVersion: 4 })).constructor.name, 'Parser', 'callers with options (mqtt.js) keep the original');
});
