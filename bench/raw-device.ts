/**
 * A lean MQTT 3.1.1 device for load generation: one socket, QoS 1 PUBLISH from a pre-encoded
 * template with only the packet id patched, PUBACKs matched by id. mqtt.js spends several times
 * the CPU per message, and on a 2-core box the generator would otherwise be what is measured;
 * real devices run small embedded clients. Packets are encoded and parsed with mqtt-packet.
 */
import { connect, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';

export class RawDevice {
  private readonly pending = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private nextId = 1;
  private template: Buffer | undefined;
  private idOffset = 0;

  private constructor(private readonly socket: Socket) {}

  /** Connects and resolves after CONNACK 0; rejects with `code` set to the CONNACK return code. */
  static open(port: number, clientId: string, username?: string, password?: string): Promise<RawDevice> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', noDelay: true });
      const device = new RawDevice(socket);
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      let connected = false;
      parser.on('packet', (packet) => {
        if (packet.cmd === 'connack') {
          if (packet.returnCode === 0) {
            connected = true;
            resolve(device);
          } else {
            socket.destroy();
            reject(Object.assign(new Error(`CONNACK ${packet.returnCode}`), { code: packet.returnCode }));
          }
        } else if (packet.cmd === 'puback') {
          const waiter = device.pending.get(packet.messageId as number);
          device.pending.delete(packet.messageId as number);
          waiter?.resolve();
        }
      });
      socket.on('data', (chunk) => parser.parse(chunk));
      socket.on('error', (err) => {
        if (!connected) reject(err);
      });
      socket.on('close', () => {
        if (!connected) reject(new Error('closed before CONNACK'));
        for (const waiter of device.pending.values()) waiter.reject(new Error('connection closed before PUBACK'));
        device.pending.clear();
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

  /** Sends a QoS 1 PUBLISH; resolves on its PUBACK. The topic and payload are fixed per device. */
  publish(topic: string, payload: Buffer): Promise<void> {
    if (!this.template) {
      this.template = mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 1, messageId: 1, retain: false, dup: false });
      // fixed header byte + remaining-length bytes + 2-byte topic length + topic
      let lengthBytes = 1;
      while ((this.template[lengthBytes] as number) & 0x80) lengthBytes++;
      this.idOffset = 1 + lengthBytes + 2 + Buffer.byteLength(topic);
    }
    const id = this.nextId;
    this.nextId = this.nextId === 0xffff ? 1 : this.nextId + 1;
    const packet = Buffer.from(this.template);
    packet.writeUInt16BE(id, this.idOffset);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // packets published in one tick leave in one write, as a device's network stack would batch them
      if (this.socket.writableCorked === 0) {
        this.socket.cork();
        process.nextTick(() => this.socket.uncork());
      }
      this.socket.write(packet);
    });
  }

  close(): void {
    this.socket.end(mqttPacket.generate({ cmd: 'disconnect' }));
  }
}
