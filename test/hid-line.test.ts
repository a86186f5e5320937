import { EventEmitter } from 'node:events';
import t from 'tap';
import { type HidDeviceLike, HidLine } from '../hub/devices/transports/hid-line.js';

/** An in-memory HID device with node-hid's HIDAsync shape (there is no /dev/uhid on these machines). */
class FakeHid extends EventEmitter implements HidDeviceLike {
  written: Buffer[] = [];
  closed = false;
  async write(data: Buffer | number[]): Promise<number> {
    const b = Buffer.from(data);
    this.written.push(b);
    return b.length;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

t.test('reports flow in, writes flow out, an unplug is a close with an error', async (t) => {
  const fake = new FakeHid();
  const line = new HidLine({ vendorId: 0x0c2e, productId: 0x0b61 }, async () => fake);
  const got: string[] = [];
  const closes: (string | undefined)[] = [];
  line.onData((d) => got.push(d.toString()));
  line.onClose((e) => closes.push(e?.message));
  await line.open();
  t.ok(line.isOpen);
  fake.emit('data', Buffer.from('4006381333931'));
  await line.write(Buffer.from([0x00, 0x01]));
  t.same(got, ['4006381333931']);
  t.same(fake.written, [Buffer.from([0x00, 0x01])]);
  fake.emit('error', new Error('could not read from HID device'));
  t.notOk(line.isOpen);
  t.same(closes, ['could not read from HID device']);
  await t.rejects(line.write(Buffer.from([1])), /not open/);
});

t.test('close is idempotent and releases the device', async (t) => {
  const fake = new FakeHid();
  const line = new HidLine({ vendorId: 1, productId: 2 }, async () => fake);
  await line.open();
  await line.close();
  await line.close();
  t.ok(fake.closed);
  t.notOk(line.isOpen);
});

t.test('the real node-hid binding reports a missing device clearly', async (t) => {
  const line = new HidLine({ vendorId: 0xffff, productId: 0xfffe, path: '/dev/hidraw-storehub-missing' });
  await t.rejects(line.open(), /No such file or directory|cannot open device/);
  t.notOk(line.isOpen);
});
