/**
 * The sync service: moves the outbox to the enabled uplinks (the MQTT cloud link: every stream;
 * the OMS adapter: the ledger), keeps each stream inside its budget, samples telemetry, and
 * hands downlink jobs and desired state to hub/ops. With no uplink enabled it still compacts,
 * so a store that never connects keeps bounded disk use.
 */
import type { HubConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { HubMetrics } from '../observability/metrics.js';
import type { CloudLink } from './cloud-link.js';
import type { OmsAdapter } from './oms-adapter.js';
import type { Outbox } from './outbox.js';
import { OutboxCompactor } from './outbox-compactor.js';
import { ReplayPacer } from './replay-pacer.js';
import { type AckAnswer, type PumpEvent, type SinkTransport, StreamPump } from './stream-pump.js';
import { STREAMS, type StreamName } from './streams.js';

/** The part of hub/ops the downlink feeds; absent until ops is wired. */
export interface DownlinkJobs {
  fromCloud(document: unknown, raw: string): void;
  desiredState(document: unknown): void;
}

export interface SyncDeps {
  config: HubConfig;
  outbox: Outbox;
  log: Logger;
  metrics: HubMetrics;
  version: string;
  startedAt: number;
  /** A short health summary for the birth message and telemetry. */
  health: () => unknown;
  /** One telemetry sample (device availability and the like) for the telemetry stream. */
  telemetrySample: () => unknown;
  jobs?: () => DownlinkJobs | undefined;
  /** How often pumps check ack timeouts and compaction runs; tests shorten it. */
  tickMs?: number;
}

export interface SinkStatus {
  sink: string;
  connected: boolean;
  ackedEpoch: number;
  ackedSeq: number;
  lastAckAt: number | null;
  lagSeconds: number;
  inFlightBatches: number;
  held: { reason: string; message: string; since: number } | null;
}

export interface StreamStatus {
  stream: StreamName;
  epoch: number;
  head: number;
  backlogRecords: number;
  backlogBytes: number;
  budgetBytes: number;
  overBudget: boolean;
  expired: number;
  dropped: number;
  folded: number;
  sinks: SinkStatus[];
}

export class SyncService {
  readonly name = 'sync';
  link: CloudLink | undefined;
  oms: OmsAdapter | undefined;
  private readonly pumps = new Map<string, Map<StreamName, StreamPump>>();
  private compactor: OutboxCompactor | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private telemetryTimer: NodeJS.Timeout | undefined;
  private wakeScheduled = false;
  private compactScheduled = false;
  private lastCompactAt = 0;

  constructor(private readonly deps: SyncDeps) {}

  async start(): Promise<void> {
    const { config, outbox, log, metrics } = this.deps;
    const cloud = config.cloud;
    this.compactor = new OutboxCompactor(outbox.db, outbox, {
      ledger: cloud.streams.ledger.maxBytes,
      events: cloud.streams.events.maxBytes,
      footfall: cloud.streams.footfall.maxBytes,
      telemetry: cloud.streams.telemetry.maxBytes,
    });
    // The uplinks' clients (mqtt.js, undici) are loaded only when configured: a hub without them
    // does not carry their memory.
    if (cloud.oms.enabled) {
      const { OmsAdapter } = await import('./oms-adapter.js');
      const oms = new OmsAdapter(cloud.oms, outbox.identity.hubId);
      this.oms = oms;
      outbox.registerSink(oms.sink, ['ledger']);
      // A receiver rebuilt from a backup may have less than our cursor says, a fresh hub more: ask.
      const there = await oms.cursor('ledger');
      if (there && there.epoch === outbox.identity.epoch && there.appliedThrough > outbox.acked(oms.sink, 'ledger', there.epoch)) {
        outbox.ack(oms.sink, 'ledger', there.epoch, there.appliedThrough);
      }
      this.addPumps(oms, ['ledger'], new ReplayPacer(cloud.replayRecordsPerSecond), cloud.oms.batchSize, 1, cloud.oms.timeoutSeconds * 3000);
    }
    if (cloud.enabled) {
      const { CloudLink } = await import('./cloud-link.js');
      const link = new CloudLink(
        cloud,
        {
          hubId: outbox.identity.hubId,
          storeId: outbox.identity.storeId,
          epoch: outbox.identity.epoch,
          version: this.deps.version,
          startedAt: this.deps.startedAt,
        },
        {
          onAck: (stream, answer) => this.pumps.get('cloud')?.get(stream)?.onAck(answer),
          onRefused: (stream, answer, error) => {
            const pump = this.pumps.get('cloud')?.get(stream);
            if (!pump) return;
            pump.onAck(answer);
            pump.hold(error.code, `the cloud consumer refused a batch: ${error.message}`);
          },
          onSession: (present) => {
            metrics.cloudConnected.set(1);
            metrics.cloudConnects.inc();
            for (const pump of this.pumps.get('cloud')?.values() ?? []) {
              // With the session kept, the broker still has what was in flight; without it, resend.
              if (!present) pump.rewind('new session');
              pump.wake();
            }
          },
          onDisconnect: () => {
            metrics.cloudConnected.set(0);
            for (const pump of this.pumps.get('cloud')?.values() ?? []) pump.rewind('disconnected');
          },
          onJob: (doc, raw) => {
            const jobs = this.deps.jobs?.();
            if (jobs) jobs.fromCloud(doc, raw);
            else this.rejectDownlink('jobs', 'jobs are not accepted: remote operations are not running');
          },
          onDesired: (doc) => {
            const jobs = this.deps.jobs?.();
            if (jobs) jobs.desiredState(doc);
            else this.rejectDownlink('desired', 'desired state is not accepted: remote operations are not running');
          },
          onRejected: (topic, reason) => this.rejectDownlink(topic, reason),
        },
        this.deps.health,
        log.child({ sink: 'cloud' }),
      );
      this.link = link;
      outbox.registerSink(link.sink, STREAMS);
      this.addPumps(link, STREAMS, new ReplayPacer(cloud.replayRecordsPerSecond), cloud.batchSize, cloud.window, cloud.ackTimeoutSeconds * 1000);
      link.start();
    }
    outbox.onAppend = (stream) => this.scheduleWake(stream);
    const tick = this.deps.tickMs ?? 1000;
    let ticks = 0;
    this.ticker = setInterval(() => {
      ticks++;
      for (const pumps of this.pumps.values()) for (const pump of pumps.values()) pump.checkTimeouts();
      // compaction scans rows: every fifth tick is often enough to stay near the budget
      if (ticks % 5 === 0) this.compact();
      this.refreshGauges();
    }, tick);
    this.ticker.unref();
    this.telemetryTimer = setInterval(() => this.sampleTelemetry(), cloud.telemetryIntervalSeconds * 1000);
    this.telemetryTimer.unref();
    this.compact();
    this.refreshGauges();
    for (const pumps of this.pumps.values()) for (const pump of pumps.values()) pump.wake();
  }

  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    if (this.telemetryTimer) clearInterval(this.telemetryTimer);
    this.deps.outbox.onAppend = undefined;
    for (const pumps of this.pumps.values()) for (const pump of pumps.values()) pump.stop();
    this.deps.metrics.cloudConnected.set(0);
    await this.link?.stop();
    await this.oms?.close();
  }

  /** Per stream: what is held, what each sink has acknowledged, how far behind it is. */
  status(): StreamStatus[] {
    const { outbox, config } = this.deps;
    const now = Date.now();
    return STREAMS.map((stream) => {
      const size = outbox.size(stream);
      const counters = outbox.counters(stream);
      const sinks: SinkStatus[] = [];
      for (const [sink, pumps] of this.pumps) {
        const pump = pumps.get(stream);
        if (!pump) continue;
        const pos = pump.position;
        const cursor = outbox.cursor(sink, stream, pos.epoch);
        const oldest = outbox.oldestUnacked(stream, pos);
        sinks.push({
          sink,
          connected: sink === 'cloud' ? this.link?.connected === true : true,
          ackedEpoch: pos.epoch,
          ackedSeq: pos.seq,
          lastAckAt: cursor.ackedAt,
          lagSeconds: oldest === undefined ? 0 : Math.max(0, (now - oldest) / 1000),
          inFlightBatches: pump.inFlightBatches,
          held: pump.held ?? null,
        });
      }
      return {
        stream,
        epoch: outbox.identity.epoch,
        head: outbox.head(stream),
        backlogRecords: size.records,
        backlogBytes: size.bytes,
        budgetBytes: config.cloud.streams[stream].maxBytes,
        overBudget: this.compactor?.overBudget.has(stream) ?? false,
        ...counters,
        sinks,
      };
    });
  }

  /** Appends one telemetry sample (and publishes it live when connected). */
  sampleTelemetry(): void {
    const sample = this.deps.telemetrySample();
    const time = Date.now();
    try {
      this.deps.outbox.db.transaction(() => this.deps.outbox.append({ stream: 'telemetry', type: 'hub.telemetry', eventTime: time, body: sample }))();
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'telemetry sample not recorded');
    }
    if (this.link?.connected) void this.link.publishJson('telemetry', { time, health: this.deps.health(), sync: this.summary() }, { qos: 0 });
  }

  /** A compact view for the birth message and telemetry. */
  summary(): Record<string, { backlog: number; lagSeconds: number }> {
    const out: Record<string, { backlog: number; lagSeconds: number }> = {};
    for (const s of this.status()) out[s.stream] = { backlog: s.backlogRecords, lagSeconds: Math.max(0, ...s.sinks.map((k) => k.lagSeconds)) };
    return out;
  }

  private addPumps(
    transport: SinkTransport,
    streams: readonly StreamName[],
    pacer: ReplayPacer,
    batchSize: number,
    window: number,
    ackTimeoutMs: number,
  ): void {
    const { outbox, metrics, log } = this.deps;
    const pumps = new Map<StreamName, StreamPump>();
    for (const stream of streams) {
      const onEvent = (e: PumpEvent) => {
        if (e.type === 'sent') metrics.syncSent.inc({ stream, sink: transport.sink }, e.records);
        else if (e.type === 'acked') metrics.outboxAcked.inc({ stream, sink: transport.sink }, e.records);
        else if (e.type === 'rewind') {
          metrics.syncRewinds.inc({ stream, sink: transport.sink });
          log.debug({ stream, sink: transport.sink, reason: e.reason }, 'resending from the last ack');
        } else {
          metrics.syncFailures.inc({ sink: transport.sink, reason: e.reason });
          log.warn({ stream, sink: transport.sink, action: e.action, reason: e.reason, err: e.message }, 'sync send failed');
        }
      };
      pumps.set(
        stream,
        new StreamPump({
          outbox,
          transport,
          stream,
          batchSize,
          window,
          ackTimeoutMs,
          pacer,
          retryDelayMs: (attempt) => Math.min(60_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2),
          holdRetryMs: 60_000,
          onEvent,
        }),
      );
    }
    this.pumps.set(transport.sink, pumps);
  }

  /** Acks from an HTTP answer arrive through the pump itself; this is for tests and tools. */
  ack(sink: string, stream: StreamName, answer: AckAnswer): void {
    this.pumps.get(sink)?.get(stream)?.onAck(answer);
  }

  private scheduleWake(stream: StreamName): void {
    this.deps.metrics.outboxProduced.inc({ stream });
    // Over budget: compact soon (at most once a second), not only on the periodic tick, so a busy
    // stream overshoots its budget by a second of production at most.
    if (!this.compactScheduled && this.deps.outbox.size(stream).bytes > this.deps.config.cloud.streams[stream].maxBytes) {
      this.compactScheduled = true;
      const wait = Math.max(0, 1000 - (Date.now() - this.lastCompactAt));
      setTimeout(() => {
        this.compactScheduled = false;
        this.compact();
      }, wait).unref();
    }
    if (this.wakeScheduled) return;
    this.wakeScheduled = true;
    // after the producer's transaction has committed (it runs synchronously to the end of this turn)
    setImmediate(() => {
      this.wakeScheduled = false;
      for (const pumps of this.pumps.values()) for (const pump of pumps.values()) pump.wake();
    });
  }

  private compact(): void {
    this.lastCompactAt = Date.now();
    const compactor = this.compactor;
    if (!compactor) return;
    try {
      for (const r of compactor.run()) {
        const outcome = r.action === 'fold' ? 'folded' : r.action === 'expire' ? 'expired' : 'dropped';
        this.deps.metrics.outboxGivenUp.inc({ stream: r.stream, outcome }, r.records);
        this.deps.log.warn({ stream: r.stream, action: r.action, records: r.records }, 'outbox stream over its disk budget: compacted');
      }
    } catch (err) {
      this.deps.log.error({ err }, 'outbox compaction failed');
    }
  }

  private refreshGauges(): void {
    const { metrics } = this.deps;
    for (const s of this.status()) {
      metrics.outboxBacklogRecords.set({ stream: s.stream }, s.backlogRecords);
      metrics.outboxBacklogBytes.set({ stream: s.stream }, s.backlogBytes);
      metrics.outboxOverBudget.set({ stream: s.stream }, s.overBudget ? 1 : 0);
      for (const k of s.sinks) {
        metrics.syncLag.set({ stream: s.stream, sink: k.sink }, k.lagSeconds);
        metrics.syncHeld.set({ stream: s.stream, sink: k.sink }, k.held ? 1 : 0);
      }
    }
  }

  /** Counts, logs and reports upstream a downlink message the hub will not act on. */
  rejectDownlink(topic: string, reason: string): void {
    this.deps.metrics.cloudDownlinkRejected.inc({ topic: topic.split('/').pop() ?? topic });
    this.deps.log.warn({ topic, reason }, 'downlink message rejected');
    void this.link?.publishJson('rejected', { topic, reason, time: Date.now() }, { qos: 1 });
  }
}
