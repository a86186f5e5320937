import type { Command, Option } from 'commander';
import type { Scope } from '../store/api-tokens.js';
import { withToolStore } from './open-tool-store.js';

/** `storehub token create|list|revoke`: API bearer tokens; the secret is printed once. */
export function tokenCommands(token: Command, configOption: () => Option, parseScope: (v: string) => string): void {
  token
    .command('create')
    .description('create an API token and print it (shown once)')
    .requiredOption('-s, --scope <scope>', 'read, ops or admin', parseScope)
    .option('-n, --name <name>', 'who or what uses it', '')
    .addOption(configOption())
    .action(async (opts: { scope: Scope; name: string; config: string }) => {
      await withToolStore(opts.config, (store) => {
        const { id, token: secret } = store.tokens.create(opts.scope, opts.name);
        process.stdout.write(`${secret}\n`);
        process.stderr.write(`token ${id} (scope ${opts.scope}) created; it is not stored and cannot be shown again\n`);
      });
    });

  token
    .command('list')
    .description('list tokens (never their secrets)')
    .addOption(configOption())
    .action(async (opts: { config: string }) => {
      await withToolStore(opts.config, (store) => {
        for (const t of store.tokens.list()) {
          const state = t.revokedAt ? `revoked ${new Date(t.revokedAt).toISOString()}` : 'active';
          process.stdout.write(`${t.id}\t${t.scope}\t${state}\t${t.name}\n`);
        }
      });
    });

  token
    .command('revoke')
    .description('revoke a token at once')
    .argument('<id>')
    .addOption(configOption())
    .action(async (id: string, opts: { config: string }) => {
      await withToolStore(opts.config, (store) => {
        if (store.tokens.revoke(id)) process.stdout.write(`token ${id} revoked\n`);
        else {
          process.stderr.write(`no active token ${id}\n`);
          process.exitCode = 1;
        }
      });
    });
}
