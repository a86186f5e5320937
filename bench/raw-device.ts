/**
 * A lean MQTT 3.1.1 device for load generation: one socket, QoS 1 PUBLISH from a pre-encoded
 * template with only the packet id patched, PUBACKs matched by id through a callback table.
 * The generator shares the benchmark machine's two cores with the server it measures, so every
 * microsecond it spends per message is taken from the server: mqtt.js costs several times more, and
 * even a promise per message showed up in profiles. Real devices run small embedded clients.
 * The CONNECT is encoded with mqtt-packet; the few packet types a publishing device receives
 * (CONNACK, PUBACK, PINGRESP) are read by hand.
 */
import { connect, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';

export type AckCallback = (err?: Error) => void;

const CONNACK = 2;
const PUBACK = 4;

export class RawDevice {
  /** Callbacks by packet id: a device has at most 65,535 messages in flight. */
  private readonly waiting: (AckCallback | undefined)[] = new Array(0x10000);
  private inflight = 0;
  private nextId = 1;
  private template: Buffer | undefined;
  private templateTopic = '';
  private idOffset = 0;
  private rest: Buffer | undefined;

  private constructor(private readonly socket: Socket) {}

  /** Messages sent and not yet acknowledged. */
  get pending(): number {
    return this.inflight;
  }

  /** Connects and resolves after CONNACK 0; rejects with `code` set to the CONNACK return code. */
  static open(port: number, clientId: string, username?: string, password?: string): Promise<RawDevice> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', noDelay: true });
      const device = new RawDevice(socket);
      let connected = false;
      device.onConnack = (returnCode) => {
        if (returnCode === 0) {
          connected = true;
          resolve(device);
        } else {
          socket.destroy();
          reject(Object.assign(new Error(`CONNACK ${returnCode}`), { code: returnCode }));
        }
      };
      socket.on('data', (chunk: Buffer) => device.read(chunk));
      socket.on('error', (err) => {
        if (!connected) reject(err);
      });
      socket.on('close', () => {
        if (!connected) reject(new Error('closed before CONNACK'));
        device.failAll(new Error('connection closed before PUBACK'));
      });
      socket.write(
        mqttPacket.generate({
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: 4,
          clean: true,
          clientId,
          keepalive: 60,
          ...(username !== undefined ? { username, password: Buffer.from(password ?? '') } : {}),
        }),
      );
    });
  }

  private onConnack: (returnCode: number) => void = () => {};

  /**
   * Sends a QoS 1 PUBLISH and calls `onAck` on its PUBACK (or with an error if the connection
   * closes first). The topic and payload are fixed per device after the first call.
   */
  send(topic: string, payload: Buffer, onAck: AckCallback): void {
    if (!this.template || this.templateTopic !== topic) {
      this.template = mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 1, messageId: 1, retain: false, dup: false });
      this.templateTopic = topic;
      // fixed header byte + remaining-length bytes + 2-byte topic length + topic
      let lengthBytes = 1;
      while ((this.template[lengthBytes] as number) & 0x80) lengthBytes++;
      this.idOffset = 1 + lengthBytes + 2 + Buffer.byteLength(topic);
    }
    const id = this.nextId;
    this.nextId = this.nextId === 0xffff ? 1 : this.nextId + 1;
    const packet = Buffer.from(this.template);
    packet.writeUInt16BE(id, this.idOffset);
    this.waiting[id] = onAck;
    this.inflight++;
    // packets published in one tick leave in one write, as a device's network stack would batch them
    if (this.socket.writableCorked === 0) {
      this.socket.cork();
      process.nextTick(() => this.socket.uncork());
    }
    this.socket.write(packet);
  }

  /** `send` as a promise, for tests that publish a few messages. */
  publish(topic: string, payload: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.send(topic, payload, (err) => (err ? reject(err) : resolve())));
  }

  close(): void {
    this.socket.end(mqttPacket.generate({ cmd: 'disconnect' }));
  }

  /** Splits the byte stream into MQTT packets (fixed header, remaining length, body). */
  private read(chunk: Buffer): void {
    const data = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = undefined;
    let at = 0;
    while (at < data.length) {
      let length = 0;
      let multiplier = 1;
      let i = at + 1;
      let complete = false;
      while (i < data.length && i < at + 5) {
        const byte = data[i++] as number;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || i + length > data.length) break;
      const type = (data[at] as number) >> 4;
      if (type === PUBACK) this.acknowledged(data.readUInt16BE(i));
      else if (type === CONNACK) this.onConnack(data[i + 1] as number);
      at = i + length;
    }
    if (at < data.length) this.rest = data.subarray(at);
  }

  private acknowledged(id: number): void {
    const cb = this.waiting[id];
    if (!cb) return;
    this.waiting[id] = undefined;
    this.inflight--;
    cb();
  }

  private failAll(err: Error): void {
    for (let id = 1; id < this.waiting.length; id++) {
      const cb = this.waiting[id];
      if (!cb) continue;
      this.waiting[id] = undefined;
      cb(err);
    }
    this.inflight = 0;
  }
}
