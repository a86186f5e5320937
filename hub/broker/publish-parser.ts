/**
 * A fast path in front of aedes' MQTT parser for the one packet that dominates a hub's traffic: a
 * PUBLISH that lies whole in the bytes just read. mqtt-packet parses every packet through a
 * BufferList (bl), which allocates a new Buffer view each time it consumes the fixed header, the
 * length and the body, and again for the topic and the payload; at full ingest those views were a
 * third of everything the hub's thread allocated, and parsing about an eighth of its time. Taking
 * those PUBLISH packets straight from the read raised durable ingest by about a quarter.
 *
 * Everything else goes to mqtt-packet unchanged: other packet types, a packet cut by the end of
 * the read (and everything after it), anything malformed (so its errors are mqtt-packet's), and
 * MQTT 5, which aedes does not accept anyway. The packets handed on are mqtt-packet's own Packet
 * objects with the same fields, so aedes cannot tell the difference; test/publish-parser.test.ts
 * feeds random packet streams cut at random points to both parsers and compares what they emit.
 *
 * It is installed on the mqtt-packet that aedes resolves, for parsers created without options
 * (aedes creates each client's that way); mqtt.js passes its options and keeps the original.
 */
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

interface MqttPacket {
  cmd: string | null;
  retain: boolean;
  qos: number;
  dup: boolean;
  length: number;
  topic: string | null;
  payload: Buffer | null;
  messageId?: number;
}

interface MqttParser extends EventEmitter {
  parse(buf: Buffer): number;
  parser(opt?: object): MqttParser;
  error: Error | null;
  settings: { protocolVersion?: number };
  _list: { length: number };
  _stateCounter: number;
}

type ParserClass = new () => MqttParser;

const PUBLISH = 3;
const INSTALLED = Symbol.for('storehub.publishFastPath');

/** mqtt-packet's Parser with the fast path in front of its parse(). */
export function fastPublishParserClass(Parser: ParserClass, Packet: new () => MqttPacket): ParserClass {
  return class FastPublishParser extends Parser {
    override parse(buf: Buffer): number {
      // Mid-packet, after an error, or MQTT 5 (properties): mqtt-packet's own state machine.
      if (this.error || this._list.length > 0 || this._stateCounter !== 0 || this.settings.protocolVersion === 5) return super.parse(buf);
      const n = buf.length;
      let at = 0;
      while (at < n) {
        const first = buf[at] as number;
        const qos = (first >> 1) & 3;
        if (first >> 4 !== PUBLISH || qos === 3) break;
        // remaining length: a variable-length integer of at most four bytes
        let length = 0;
        let multiplier = 1;
        let p = at + 1;
        let complete = false;
        for (let i = 0; i < 4 && p < n; i++) {
          const digit = buf[p++] as number;
          length += (digit & 0x7f) * multiplier;
          multiplier *= 128;
          if (digit < 0x80) {
            complete = true;
            break;
          }
        }
        const end = p + length;
        if (!complete || end > n || p + 2 > end) break;
        const topicLength = ((buf[p] as number) << 8) | (buf[p + 1] as number);
        p += 2;
        if (p + topicLength + (qos > 0 ? 2 : 0) > end) break;
        const packet = new Packet();
        packet.cmd = 'publish';
        packet.retain = (first & 1) !== 0;
        packet.qos = qos;
        packet.dup = (first & 8) !== 0;
        packet.length = length;
        packet.topic = buf.toString('utf8', p, p + topicLength);
        p += topicLength;
        if (qos > 0) {
          packet.messageId = ((buf[p] as number) << 8) | (buf[p + 1] as number);
          p += 2;
        }
        packet.payload = buf.subarray(p, end);
        at = end;
        this.emit('packet', packet);
      }
      if (at === n) return 0;
      return super.parse(at === 0 ? buf : buf.subarray(at));
    }
  };
}

/** Puts the fast path on the mqtt-packet that aedes uses. Idempotent. */
export function usePublishFastPath(): void {
  const fromAedes = createRequire(createRequire(import.meta.url).resolve('aedes'));
  const mqtt = fromAedes('mqtt-packet') as { parser: ((opt?: object) => MqttParser) & { [INSTALLED]?: true } };
  if (mqtt.parser[INSTALLED]) return;
  const packetDir = dirname(fromAedes.resolve('mqtt-packet'));
  const Parser = fromAedes(join(packetDir, 'parser.js')) as ParserClass;
  const Packet = fromAedes(join(packetDir, 'packet.js')) as new () => MqttPacket;
  const FastPublishParser = fastPublishParserClass(Parser, Packet);
  const original = mqtt.parser;
  const parser = (opt?: object): MqttParser => (opt === undefined ? new FastPublishParser().parser() : original(opt));
  mqtt.parser = Object.assign(parser, { [INSTALLED]: true as const });
}
