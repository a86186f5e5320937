/**
 * Every Prometheus metric the hub exports, in one place so names stay consistent and documented
 * (docs/metrics.md lists them; a test checks that every name here is documented).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'storehub_' });
  const r = [registry];
  return {
    registry,
    serviceUp: new Gauge({ name: 'storehub_service_up', help: '1 when the service is started and healthy', labelNames: ['service'], registers: r }),
    brokerClients: new Gauge({ name: 'storehub_broker_clients', help: 'MQTT clients connected now', registers: r }),
    brokerConnections: new Counter({
      name: 'storehub_broker_connections_total',
      help: 'MQTT connection attempts by outcome',
      labelNames: ['outcome'],
      registers: r,
    }),
    brokerMessagesIn: new Counter({
      name: 'storehub_broker_messages_in_total',
      help: 'PUBLISH packets accepted from devices',
      labelNames: ['qos'],
      registers: r,
    }),
    brokerMessagesOut: new Counter({ name: 'storehub_broker_messages_out_total', help: 'PUBLISH packets delivered to devices', registers: r }),
    brokerAclDenied: new Counter({
      name: 'storehub_broker_acl_denied_total',
      help: 'publish or subscribe outside the device namespace',
      labelNames: ['action'],
      registers: r,
    }),
    brokerOversize: new Counter({ name: 'storehub_broker_oversize_packets_total', help: 'connections closed for a packet over maxPacketBytes', registers: r }),
    brokerThrottled: new Counter({ name: 'storehub_broker_throttled_total', help: 'messages delayed by the per-client rate limit', registers: r }),
    brokerClientErrors: new Counter({ name: 'storehub_broker_client_errors_total', help: 'connections closed on a protocol or socket error', registers: r }),
    journalCommitted: new Counter({
      name: 'storehub_journal_messages_committed_total',
      help: 'device messages committed before acknowledgement',
      registers: r,
    }),
    journalRejected: new Counter({
      name: 'storehub_journal_messages_rejected_total',
      help: 'device messages refused (not acknowledged)',
      labelNames: ['reason'],
      registers: r,
    }),
    journalBatch: new Histogram({
      name: 'storehub_journal_batch_size',
      help: 'messages per group commit',
      buckets: [1, 4, 16, 64, 256, 1024, 4096],
      registers: r,
    }),
    journalCommitSeconds: new Histogram({
      name: 'storehub_journal_commit_seconds',
      help: 'time to commit one group',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
      registers: r,
    }),
    storeBytes: new Gauge({ name: 'storehub_store_used_bytes', help: 'live database pages plus WAL', registers: r }),
    storeWalFrames: new Gauge({
      name: 'storehub_store_wal_frames',
      help: 'WAL frames at the last checkpoint (bounded when checkpoints keep up)',
      registers: r,
    }),
    storeCheckpointFailures: new Gauge({
      name: 'storehub_store_checkpoint_failures',
      help: 'background WAL checkpoints that failed since start',
      registers: r,
    }),
    storeBudgetBytes: new Gauge({ name: 'storehub_store_budget_bytes', help: 'configured database.maxBytes', registers: r }),
    storeBudgetExceeded: new Gauge({ name: 'storehub_store_budget_exceeded', help: '1 while the disk budget is reached and ingest is refused', registers: r }),
    storeSalvaged: new Gauge({ name: 'storehub_store_salvaged', help: '1 when this start found a corrupt database and salvaged it', registers: r }),
    deviceAvailability: new Gauge({
      name: 'storehub_device_availability',
      help: '1 for the current availability of each device',
      labelNames: ['device', 'availability'],
      registers: r,
    }),
    deviceEvents: new Counter({ name: 'storehub_device_events_total', help: 'events emitted by drivers', labelNames: ['type'], registers: r }),
    deviceRejected: new Counter({
      name: 'storehub_device_rejected_total',
      help: 'device input rejected by drivers (malformed, CRC, unknown antenna, ...)',
      labelNames: ['device', 'reason'],
      registers: r,
    }),
    deviceRestarts: new Counter({
      name: 'storehub_device_driver_restarts_total',
      help: 'driver restarts after a failure',
      labelNames: ['device'],
      registers: r,
    }),
    rfidReadToEvent: new Histogram({
      name: 'storehub_rfid_read_to_event_seconds',
      help: "from a read's timestamp (the reader's clock) to the hub having folded it into item state",
      buckets: [0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: r,
    }),
    outboxProduced: new Counter({ name: 'storehub_outbox_produced_total', help: 'records appended to the outbox', labelNames: ['stream'], registers: r }),
    outboxAcked: new Counter({
      name: 'storehub_outbox_acked_total',
      help: 'records a sink acknowledged (applied by the receiver)',
      labelNames: ['stream', 'sink'],
      registers: r,
    }),
    outboxGivenUp: new Counter({
      name: 'storehub_outbox_given_up_total',
      help: 'unsent records folded into another, expired or dropped under a stream budget',
      labelNames: ['stream', 'outcome'],
      registers: r,
    }),
    outboxBacklogRecords: new Gauge({ name: 'storehub_outbox_backlog_records', help: 'records held in the outbox', labelNames: ['stream'], registers: r }),
    outboxBacklogBytes: new Gauge({
      name: 'storehub_outbox_backlog_bytes',
      help: 'approximate bytes held in the outbox',
      labelNames: ['stream'],
      registers: r,
    }),
    outboxOverBudget: new Gauge({
      name: 'storehub_outbox_over_budget',
      help: '1 while a stream is above its disk budget after compaction',
      labelNames: ['stream'],
      registers: r,
    }),
    syncLag: new Gauge({
      name: 'storehub_sync_lag_seconds',
      help: 'age of the oldest record a sink has not acknowledged (0 when caught up)',
      labelNames: ['stream', 'sink'],
      registers: r,
    }),
    syncSent: new Counter({ name: 'storehub_sync_records_sent_total', help: 'records sent (resends included)', labelNames: ['stream', 'sink'], registers: r }),
    syncRewinds: new Counter({
      name: 'storehub_sync_rewinds_total',
      help: 'resends from the last ack (gap at the receiver, ack timeout, lost session, failed send)',
      labelNames: ['stream', 'sink'],
      registers: r,
    }),
    syncFailures: new Counter({ name: 'storehub_sync_send_failures_total', help: 'failed sends by reason', labelNames: ['sink', 'reason'], registers: r }),
    syncHeld: new Gauge({
      name: 'storehub_sync_held',
      help: '1 while a receiver refuses a stream (4xx) and it is held',
      labelNames: ['stream', 'sink'],
      registers: r,
    }),
    cloudConnected: new Gauge({ name: 'storehub_cloud_connected', help: '1 while the MQTT cloud link is connected', registers: r }),
    cloudConnects: new Counter({ name: 'storehub_cloud_connects_total', help: 'cloud link connections made (the first and every reconnect)', registers: r }),
    cloudDownlinkRejected: new Counter({
      name: 'storehub_cloud_downlink_rejected_total',
      help: 'downlink messages rejected (not JSON, malformed ack, job or desired state)',
      labelNames: ['topic'],
      registers: r,
    }),
    apiRequests: new Counter({
      name: 'storehub_api_requests_total',
      help: 'HTTP requests by route and status class',
      labelNames: ['route', 'status'],
      registers: r,
    }),
    apiAuthFailures: new Counter({
      name: 'storehub_api_auth_failures_total',
      help: 'requests refused for a missing, invalid or under-scoped token',
      labelNames: ['reason'],
      registers: r,
    }),
    jobsSubmitted: new Counter({
      name: 'storehub_jobs_submitted_total',
      help: 'job documents submitted, by job type (unknown for an unrecognised one) and source',
      labelNames: ['type', 'source'],
      registers: r,
    }),
    jobsFinished: new Counter({
      name: 'storehub_jobs_finished_total',
      help: 'jobs that reached a terminal status, by job type and status',
      labelNames: ['type', 'status'],
      registers: r,
    }),
    jobExecutionsInProgress: new Gauge({
      name: 'storehub_job_executions_in_progress',
      help: 'job executions running on their target now, by job type',
      labelNames: ['type'],
      registers: r,
    }),
  };
}

export type HubMetrics = ReturnType<typeof createMetrics>;
