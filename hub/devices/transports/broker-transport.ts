/**
 * The MQTT transport of a device that connects to the hub's embedded broker: the driver
 * subscribes in process (no socket, no loopback client) and publishes commands through the broker.
 */
import type { BrokerService } from '../../broker/broker.js';
import type { MqttTransport, Unsubscribe } from '../../sdk/transport.js';

export class BrokerTransport implements MqttTransport {
  readonly type = 'mqtt' as const;
  private readonly subscriptions = new Set<Unsubscribe>();

  constructor(private readonly broker: BrokerService) {}

  subscribe(filter: string, handler: (topic: string, payload: Buffer) => void): Unsubscribe {
    const off = this.broker.subscribe(filter, (packet) => handler(packet.topic, packet.payload as Buffer));
    this.subscriptions.add(off);
    return () => {
      off();
      this.subscriptions.delete(off);
    };
  }

  publish(topic: string, payload: Buffer | string, qos: 0 | 1 = 0): Promise<void> {
    return this.broker.publish(topic, payload, qos);
  }

  /** Drops every subscription the driver made (a driver that forgets its own is still cleaned up). */
  close(): void {
    for (const off of this.subscriptions) off();
    this.subscriptions.clear();
  }
}
