import type { Command, Option } from 'commander';
import { isHubError } from '../sdk/errors.js';
import { defaultTopics } from '../store/device-credentials.js';
import { withToolStore } from './open-tool-store.js';

/** `storehub device add|list|remove`: MQTT credentials, stored hashed; the secret is shown once. */
export function deviceCommands(device: Command, configOption: () => Option): void {
  device
    .command('add')
    .description('create credentials for a device and print its secret (shown once)')
    .argument('<id>', 'device id, also its MQTT username and client id')
    .requiredOption('-k, --kind <kind>', 'device class, e.g. rfid-reader')
    .option('-t, --topic <filter...>', 'topic filters the device may use ({id} = its id); default devices/{id}/#')
    .addOption(configOption())
    .action(async (id: string, opts: { kind: string; topic?: string[]; config: string }) => {
      await withToolStore(opts.config, async (store) => {
        try {
          const secret = await store.credentials.add(id, opts.kind, opts.topic ?? defaultTopics(id));
          const cred = store.credentials.get(id);
          process.stdout.write(`device ${id} (${opts.kind}) added\nusername: ${id}\nclient id: ${id}\nsecret: ${secret}\ntopics: ${cred?.topics.join(', ')}\n`);
          process.stderr.write('The secret is not stored and cannot be shown again.\n');
        } catch (err) {
          if (isHubError(err, 'HUB_ERR_DEVICE_EXISTS')) {
            process.stderr.write(`${err.message}\n`);
            process.exitCode = 1;
            return;
          }
          if (isHubError(err, 'HUB_ERR_DEVICE_INVALID')) {
            process.stderr.write(`${err.message}\n`);
            process.exitCode = 2;
            return;
          }
          throw err;
        }
      });
    });

  device
    .command('list')
    .description('list devices with credentials')
    .option('--json', 'machine-readable output')
    .addOption(configOption())
    .action(async (opts: { json?: boolean; config: string }) => {
      await withToolStore(opts.config, (store) => {
        const rows = store.credentials
          .list()
          .map(({ deviceId, kind, topics, createdAt }) => ({ deviceId, kind, topics, createdAt: new Date(createdAt).toISOString() }));
        if (opts.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        else if (rows.length === 0) process.stdout.write('no devices\n');
        else for (const r of rows) process.stdout.write(`${r.deviceId}\t${r.kind}\t${r.topics.join(',')}\t${r.createdAt}\n`);
      });
    });

  device
    .command('remove')
    .description('delete a device and its credentials')
    .argument('<id>')
    .addOption(configOption())
    .action(async (id: string, opts: { config: string }) => {
      await withToolStore(opts.config, (store) => {
        if (store.credentials.remove(id)) process.stdout.write(`device ${id} removed\n`);
        else {
          process.stderr.write(`no device ${id}\n`);
          process.exitCode = 1;
        }
      });
    });
}
