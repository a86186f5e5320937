#!/usr/bin/env -S node --max-semi-space-size=8
/**
 * The `storehub` command. Exit codes: 0 ok, 1 runtime failure, 2 invalid config or usage,
 * 3 hub not reachable (status, job).
 */
import './quiet-warnings.js';
import '../observability/quiet-debug.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_CONFIG, VERSION } from '../package-info.js';
import { checkConfigCommand } from './check-config-command.js';
import { deviceCommands } from './device-commands.js';
import { firmwareCommands } from './firmware-commands.js';
import { jobCommands } from './job-commands.js';
import { simCommand } from './sim-command.js';
import { startCommand } from './start-command.js';
import { statusCommand } from './status-command.js';
import { tokenCommands } from './token-commands.js';

const program = new Command()
  .name('storehub')
  .description('the device hub of a smart store')
  .version(VERSION)
  .showHelpAfterError()
  .exitOverride((err) => {
    // commander's own usage errors exit 2 like an invalid config; --help/--version exit 0
    process.exit(err.exitCode === 0 ? 0 : 2);
  });

const configOption = () => new Option('-c, --config <file>', 'config file').default(DEFAULT_CONFIG, 'the demo store');

program.command('start').description('run the hub').addOption(configOption()).action(startCommand);

program
  .command('sim')
  .description('simulate the devices in a config beside a running hub (readers over MQTT, shelves on ptys)')
  .addOption(configOption())
  .action(simCommand);

program.command('check-config').description('validate a config file; exit 2 listing each problem').argument('<file>').action(checkConfigCommand);

program
  .command('status')
  .description('ask a running hub how it is')
  .addOption(configOption())
  .option('--token <token>', 'read token for details (or STOREHUB_TOKEN)')
  .action(statusCommand);

const device = program.command('device').description('MQTT credentials of devices');
deviceCommands(device, configOption);

const token = program.command('token').description('API bearer tokens');
tokenCommands(token, configOption, (value: string) => {
  if (!['read', 'ops', 'admin'].includes(value)) throw new InvalidArgumentError('must be read, ops or admin');
  return value;
});

const job = program.command('job').description('remote operations on a running hub: device commands, desired state, firmware');
jobCommands(job, configOption);

const firmware = program.command('firmware').description('sign firmware images so hubs accept them');
firmwareCommands(firmware);

await program.parseAsync(process.argv);
