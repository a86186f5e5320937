/**
 * The simulated Zebra reader's control interface (IoT Connector, PROTOCOLS.md): `start` and `stop`
 * on the control command topic, answered on the control response topic in the management envelope,
 * `{command, command_id, response: "success" | "failure", payload}`. Written from the protocol notes
 * and drivers/rfid-reader/README.md, not from the driver's code.
 */

export interface ControlOutcome {
  /** The response to publish; none for a message that cannot be answered (no command_id). */
  response?: Record<string, unknown>;
  /** The inventory state the command asked for, when it was accepted. */
  running?: boolean;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function handleControl(raw: Buffer): ControlOutcome {
  let msg: unknown;
  try {
    msg = JSON.parse(raw.toString('utf8'));
  } catch {
    return {};
  }
  if (!isRecord(msg) || typeof msg.command_id !== 'string') return {};
  const command = typeof msg.command === 'string' ? msg.command : '';
  const reply = (ok: boolean, payload: Record<string, unknown>) => ({ command, command_id: msg.command_id, response: ok ? 'success' : 'failure', payload });
  // start while running and stop while stopped succeed: the reader is already where it was asked to be
  if (command === 'start') return { response: reply(true, {}), running: true };
  if (command === 'stop') return { response: reply(true, {}), running: false };
  return { response: reply(false, { error: 'unknown_command', message: `unknown control command ${JSON.stringify(command)}` }) };
}
