/**
 * The hub's in-process bus: a typed map from event name to payload, with listeners registered
 * under an owner so a service removes all of its listeners with one call when it stops.
 * A throwing listener is logged and skipped; it never reaches the emitter or other listeners.
 */
import type { DeviceEvent } from '../sdk/events.js';
import type { DeviceHealth } from '../sdk/driver.js';

export interface ItemEvent {
  type: 'item.arrived' | 'item.moved' | 'item.departed';
  epc: string;
  zone: string;
  fromZone?: string;
  time: number;
  deviceId?: string;
  gtin14?: string;
  sku?: string;
}

export interface BusEvents {
  'device.event': DeviceEvent;
  'device.health': { deviceId: string; health: DeviceHealth; previous: DeviceHealth; time: number };
  'item.event': ItemEvent;
}

type Listener<K extends keyof BusEvents> = (payload: BusEvents[K]) => void;

export class EventBus {
  private readonly listeners = new Map<keyof BusEvents, { owner: string; fn: Listener<keyof BusEvents> }[]>();

  constructor(private readonly onListenerError: (err: unknown, event: string, owner: string) => void = () => {}) {}

  on<K extends keyof BusEvents>(event: K, owner: string, fn: Listener<K>): void {
    const list = this.listeners.get(event) ?? [];
    list.push({ owner, fn: fn as Listener<keyof BusEvents> });
    this.listeners.set(event, list);
  }

  emit<K extends keyof BusEvents>(event: K, payload: BusEvents[K]): void {
    const list = this.listeners.get(event);
    if (!list) return;
    for (const { owner, fn } of list) {
      try {
        fn(payload);
      } catch (err) {
        this.onListenerError(err, event, owner);
      }
    }
  }

  removeOwner(owner: string): void {
    for (const [event, list] of this.listeners) {
      this.listeners.set(
        event,
        list.filter((l) => l.owner !== owner),
      );
    }
  }
}
