/**
 * The reference receiver (reference-receiver/) run inside the demo hub, at the configured
 * `cloud.oms.url`, so `npm start` shows the ledger stream being delivered and acknowledged
 * (`GET /api/v1/sync`) without an OMS. Only on loopback, and only when simulation asks for it.
 */
import { join } from 'node:path';
import type { HubConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { ReceiverHttpServer } from '../../reference-receiver/http-server.js';
import { LedgerStore } from '../../reference-receiver/ledger-store.js';

export class DemoReceiverService {
  readonly name = 'demo-receiver';
  private server: ReceiverHttpServer | undefined;
  private store: LedgerStore | undefined;

  constructor(
    private readonly config: HubConfig,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const oms = this.config.cloud.oms;
    if (!oms.enabled || !oms.url) throw new Error('simulation.cloudReceiver needs cloud.oms.enabled and cloud.oms.url');
    const url = new URL(oms.url);
    if (url.protocol !== 'http:' || !['127.0.0.1', 'localhost'].includes(url.hostname)) {
      throw new Error(`simulation.cloudReceiver runs the reference receiver on loopback over http; cloud.oms.url is ${oms.url}`);
    }
    this.store = new LedgerStore({ file: join(this.config.dataDir, 'reference-receiver.db'), synchronous: 'NORMAL' });
    this.server = new ReceiverHttpServer({
      store: this.store,
      host: url.hostname === 'localhost' ? '127.0.0.1' : url.hostname,
      port: Number(url.port || 80),
      ...(oms.token ? { token: oms.token } : {}),
    });
    await this.server.listen();
    this.log.info({ url: this.server.url }, 'reference OMS receiver listening (demo)');
  }

  async stop(): Promise<void> {
    await this.server?.close();
    this.store?.close();
    this.server = undefined;
    this.store = undefined;
  }
}
