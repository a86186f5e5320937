/**
 * Simulated devices for the demo store and `storehub sim`: for every configured device of a class
 * that has a simulator, start one that speaks the real wire protocol to the hub.
 * - rfid-reader (MQTT): fresh broker credentials for the device (simulation only: the secret of an
 *   existing device cannot be read back, so it is replaced) and a reader simulator with a tag
 *   population on its antennas.
 * - smart-shelf (serial): a socat pseudo-terminal pair; the hub's driver gets one end (the device's
 *   configured path is replaced, in memory, by the pty) and a Modbus RTU slave simulator the other.
 * Devices of other kinds are left alone. Simulators share no code with the drivers they talk to.
 */
import { RfidReaderSimulator } from '../../firmware-sim/rfid-reader/index.js';
import { readerTopics, resolveOptions } from '../../drivers/rfid-reader/index.js';
import type { DeviceConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { DeviceCredentials } from '../store/device-credentials.js';

export interface Simulator {
  deviceId: string;
  kind: string;
  stop(): Promise<void>;
}

export interface SimulationDeps {
  devices: DeviceConfig[];
  credentials: () => DeviceCredentials;
  /** mqtt://host:port of the hub's broker. */
  brokerUrl: () => string;
  log: Logger;
  /**
   * 'in-process' (the hub's own demo): a shelf's configured port is replaced by the pty.
   * 'beside' (`storehub sim` next to a running hub): the pty is linked at the configured port
   * path, where the hub's driver, retrying, finds it.
   */
  mode?: 'in-process' | 'beside';
}

export class SimulationService {
  readonly name = 'simulation';
  readonly simulators: Simulator[] = [];

  constructor(private readonly deps: SimulationDeps) {}

  async start(): Promise<void> {
    for (const device of this.deps.devices) {
      try {
        const sim = await this.startOne(device);
        if (sim) {
          this.simulators.push(sim);
          this.deps.log.info({ deviceId: device.id, kind: device.kind }, 'simulator started');
        }
      } catch (err) {
        // A demo without one simulated device is still a demo: say why and go on.
        this.deps.log.warn({ deviceId: device.id, kind: device.kind, err: (err as Error).message }, 'simulator not started');
      }
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.simulators.splice(0).map((s) => s.stop().catch(() => undefined)));
  }

  private async startOne(device: DeviceConfig): Promise<Simulator | undefined> {
    if (device.kind === 'rfid-reader' && device.transport.type === 'mqtt') return this.startReader(device);
    if (device.kind === 'smart-shelf' && device.transport.type === 'serial') return startShelf(device, this.deps.mode ?? 'in-process');
    return undefined;
  }

  private async startReader(device: DeviceConfig): Promise<Simulator> {
    const driverDevice = { id: device.id, kind: device.kind, options: device.options };
    const topics = readerTopics(driverDevice);
    const credentials = this.deps.credentials();
    credentials.remove(device.id);
    const secret = await credentials.add(device.id, device.kind, topics);
    const options = device.options as {
      vendor?: 'impinj' | 'zebra';
      topics?: { events?: string; status?: string; management?: string };
      antennas?: Record<string, string>;
    };
    const sub = (t: string | undefined) => t?.replaceAll('{id}', device.id);
    const events = sub(options.topics?.events) as string;
    const status = sub(options.topics?.status);
    const management = sub(options.topics?.management);
    // the management pair (firmware, version) as the driver resolves it, defaults included
    const resolved = resolveOptions(driverDevice).options;
    const sim = new RfidReaderSimulator({
      url: this.deps.brokerUrl(),
      username: device.id,
      password: secret,
      vendor: options.vendor ?? 'impinj',
      topics: {
        events,
        ...(status ? { status } : {}),
        ...(management ? { management } : {}),
        ...(resolved ? { commands: resolved.commands, responses: resolved.responses } : {}),
        ...(resolved?.controlCommands ? { controlCommands: resolved.controlCommands } : {}),
        ...(resolved?.controlResponses ? { controlResponses: resolved.controlResponses } : {}),
      },
      antennas: Object.keys(options.antennas ?? { '1': 'zone-1' }).map(Number),
      tags: 120,
      readsPerSecond: 150,
    });
    try {
      await sim.start();
    } catch (err) {
      await sim.stop().catch(() => undefined);
      throw err;
    }
    return { deviceId: device.id, kind: device.kind, stop: () => sim.stop() };
  }
}

/** A Modbus RTU shelf on a pty pair; the device's transport path is pointed at the hub's end. */
async function startShelf(device: DeviceConfig, mode: 'in-process' | 'beside'): Promise<Simulator> {
  const { createPtyPair, ShelfSimulator } = await import('../../firmware-sim/smart-shelf/index.js');
  const configured = device.transport.type === 'serial' ? device.transport.path : undefined;
  const pair = await createPtyPair(10_000, mode === 'beside' ? configured : undefined);
  const options = device.options as { unitId?: number; model?: string; lanes?: { lane: number; unitWeightGrams: number; tareGrams?: number }[] };
  const sim = new ShelfSimulator({ unitId: options.unitId ?? 1, ...(options.model ? { model: options.model as never } : {}) });
  try {
    await sim.start(pair.b);
  } catch (err) {
    await pair.close();
    throw err;
  }
  // Stock the shelf: a few items on each configured lane, so the demo starts with numbers.
  for (const lane of options.lanes ?? []) sim.place(lane.lane, lane.unitWeightGrams, 3 + (lane.lane % 5));
  if (mode === 'in-process' && device.transport.type === 'serial') device.transport.path = pair.a;
  return {
    deviceId: device.id,
    kind: device.kind,
    stop: async () => {
      await sim.stop();
      await pair.close();
    },
  };
}
