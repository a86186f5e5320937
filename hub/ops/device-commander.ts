/**
 * The one door from remote operations to devices: run a command on a device's driver, and read the
 * firmware version the device last reported. Jobs depend on this interface, not on the devices
 * service, so they are tested against an in-memory commander and the hub wires the real one.
 */
import type { DeviceService } from '../devices/device-service.js';
import type { CommandResult, DeviceCommand } from '../sdk/driver.js';

export interface DeviceCommander {
  /** Runs a command on the device's driver. Never rejects for a device fault: `ok: false` with a detail. */
  execute(deviceId: string, command: DeviceCommand): Promise<CommandResult>;
  /** The firmware version the device last reported (registry), if any. */
  firmwareVersion(deviceId: string): string | undefined;
  /**
   * What the registry says of the device's health: an image that boots and answers `status` but
   * loses its sensors shows here (a shelf's lanes not reporting, a reader's antennas gone).
   */
  availability?(deviceId: string): { availability: string; reason?: string } | undefined;
}

/** The real commander: through the devices service's supervisors and registry. */
export function deviceServiceCommander(devices: () => DeviceService | undefined): DeviceCommander {
  return {
    async execute(deviceId, command) {
      const service = devices();
      if (!service) return { ok: false, detail: 'the devices service is not running' };
      const supervisor = service.supervisor(deviceId);
      if (!supervisor) {
        const known = service.registry?.get(deviceId);
        return { ok: false, detail: known ? `device ${deviceId} has no running driver (${known.reason ?? known.availability})` : `no device ${deviceId}` };
      }
      return supervisor.execute(command);
    },
    firmwareVersion(deviceId) {
      return devices()?.registry?.get(deviceId)?.firmware ?? undefined;
    },
    availability(deviceId) {
      const d = devices()?.registry?.get(deviceId);
      return d ? { availability: d.availability, ...(d.reason ? { reason: d.reason } : {}) } : undefined;
    },
  };
}
