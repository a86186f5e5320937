/**
 * The configuration schema: the single source for the TypeScript types (Static<>) and the JSON
 * schema published as config/schema.json (scripts/gen-schema.ts writes it; a test keeps it in sync).
 * Every object is closed (additionalProperties: false) so a misspelt key is an error, not a silent default.
 */
import { type Static, type TObject, type TProperties, Type } from '@sinclair/typebox';

export const CONFIG_VERSION = 1;

/** A closed object whose missing value is `{}` so nested defaults are filled too. */
function Section<T extends TProperties>(properties: T, description: string): TObject<T> {
  return Type.Object(properties, { additionalProperties: false, default: {}, description });
}

const Id = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'letters, digits, . _ -; at most 64' });
const Port = Type.Integer({ minimum: 0, maximum: 65535 });

const BrokerTls = Type.Object(
  {
    port: Port,
    cert: Type.String({ minLength: 1, description: 'PEM certificate chain file' }),
    key: Type.String({ minLength: 1, description: 'PEM private key file (secret)' }),
    ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA bundle for client certificates' })),
    requireClientCert: Type.Boolean({ default: false }),
  },
  { additionalProperties: false },
);

const BrokerLimits = Section(
  {
    maxClients: Type.Integer({ minimum: 1, default: 5000, description: 'connections beyond this are refused' }),
    maxPacketBytes: Type.Integer({ minimum: 64, default: 256 * 1024, description: 'larger MQTT packets close the connection' }),
    messagesPerSecond: Type.Integer({ minimum: 1, default: 2000, description: 'per device, shared by its connections; excess is delayed (TCP back-pressure)' }),
    messageBurst: Type.Integer({ minimum: 1, default: 4000 }),
    connectsPerSecond: Type.Integer({ minimum: 1, default: 200, description: 'admission rate for new connections' }),
    connectBurst: Type.Integer({ minimum: 1, default: 400 }),
    maxPendingAuth: Type.Integer({ minimum: 1, default: 32, description: 'password checks running at once' }),
    drainTimeoutMs: Type.Integer({ minimum: 100, default: 10_000, description: 'a subscriber that does not read for this long is disconnected' }),
    connectTimeoutMs: Type.Integer({ minimum: 100, default: 10_000 }),
  },
  'limits that keep one device or a reconnect storm from starving the hub',
);

const Broker = Section(
  {
    host: Type.String({ minLength: 1, default: '0.0.0.0' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 1883 }),
    tls: Type.Optional(BrokerTls),
    websocket: Type.Optional(Type.Object({ port: Port, path: Type.String({ default: '/mqtt' }) }, { additionalProperties: false })),
    limits: BrokerLimits,
  },
  'the embedded MQTT broker devices connect to',
);

const ApiTls = Type.Object(
  {
    cert: Type.String({ minLength: 1, description: 'PEM certificate chain file' }),
    key: Type.String({ minLength: 1, description: 'PEM private key file (secret)' }),
    ca: Type.Optional(
      Type.String({ minLength: 1, description: 'PEM CA bundle the storehub CLI trusts for this API; default: the certificate itself (self-signed)' }),
    ),
  },
  { additionalProperties: false, description: 'serve HTTPS instead of HTTP: bearer tokens must not cross the store LAN in clear' },
);

const Api = Section(
  {
    host: Type.String({ minLength: 1, default: '127.0.0.1' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    bodyLimitBytes: Type.Integer({ minimum: 1024, default: 1024 * 1024 }),
    tls: Type.Optional(ApiTls),
  },
  'HTTP API, metrics and dashboard',
);

const Database = Section(
  {
    synchronous: Type.Union([Type.Literal('full'), Type.Literal('normal')], {
      default: 'full',
      description: 'full: every acknowledged commit survives power loss; normal: may lose the last commits on power loss (see docs/durability.md)',
    }),
    maxBytes: Type.Integer({ minimum: 1024 * 1024, default: 2 * 1024 ** 3, description: 'disk budget for the database and its WAL' }),
    ingestRetentionHours: Type.Number({ exclusiveMinimum: 0, default: 72, description: 'raw device messages older than this are pruned' }),
  },
  'the SQLite store',
);

const MqttTransport = Type.Object(
  {
    type: Type.Literal('mqtt'),
    topics: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'topic filters the device may use; {id} is replaced by its id' })),
  },
  { additionalProperties: false },
);
const SerialTransport = Type.Object(
  {
    type: Type.Literal('serial'),
    path: Type.String({ minLength: 1 }),
    baudRate: Type.Integer({ minimum: 50, default: 9600 }),
    dataBits: Type.Union([Type.Literal(7), Type.Literal(8)], { default: 8 }),
    parity: Type.Union([Type.Literal('none'), Type.Literal('even'), Type.Literal('odd')], { default: 'none' }),
    stopBits: Type.Union([Type.Literal(1), Type.Literal(2)], { default: 1 }),
  },
  { additionalProperties: false },
);
const HidTransport = Type.Object(
  {
    type: Type.Literal('hid'),
    vendorId: Type.Integer({ minimum: 0, maximum: 0xffff }),
    productId: Type.Integer({ minimum: 0, maximum: 0xffff }),
    path: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);

const HttpStreamTransport = Type.Object(
  {
    type: Type.Literal('http-stream'),
    url: Type.String({
      pattern: '^https?://[^/?#@\\s]+(/[^?#\\s]*)?$',
      description: "base URL of the device's HTTP API, e.g. https://reader-1.local/api/v1; credentials go in username/password, never in the URL",
    }),
    username: Type.Optional(Type.String({ minLength: 1, description: 'HTTP basic auth user' })),
    password: Type.Optional(Type.String({ description: 'secret: HTTP basic auth password; never logged' })),
    ca: Type.Optional(Type.String({ minLength: 1, description: "PEM CA bundle the device's certificate must chain to (default: the system CAs)" })),
    idleTimeoutSeconds: Type.Number({
      exclusiveMinimum: 0,
      default: 90,
      description: 'a stream without a byte (not even a keep-alive) for this long is dropped and reopened',
    }),
  },
  { additionalProperties: false },
);

const Device = Type.Object(
  {
    id: Id,
    kind: Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$', description: 'device class, the name of a folder in drivers/' }),
    name: Type.Optional(Type.String()),
    model: Type.Optional(Type.String()),
    transport: Type.Union([MqttTransport, SerialTransport, HidTransport, HttpStreamTransport]),
    options: Type.Record(Type.String(), Type.Unknown(), { default: {}, description: 'protocol settings, validated by the driver' }),
  },
  { additionalProperties: false },
);

const Camera = Type.Object(
  {
    id: Id,
    source: Type.String({ minLength: 1, description: 'a file, device or stream URL read with ffmpeg' }),
    fps: Type.Number({ exclusiveMinimum: 0, maximum: 60, default: 5 }),
  },
  { additionalProperties: false },
);

const StreamBudget = (maxBytes: number, what: string) =>
  Section({ maxBytes: Type.Integer({ minimum: 4096, default: maxBytes, description: what }) }, 'disk budget of one outbox stream');

const CloudTls = Section(
  {
    ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA bundle the broker certificate must chain to (default: the system CAs)' })),
    cert: Type.Optional(Type.String({ minLength: 1, description: 'PEM client certificate file (mutual TLS)' })),
    key: Type.Optional(Type.String({ minLength: 1, description: 'PEM client private key file (secret)' })),
  },
  'TLS for mqtts:// and wss://',
);

const Oms = Section(
  {
    enabled: Type.Boolean({ default: false }),
    url: Type.Optional(Type.String({ pattern: '^https?://', description: 'base URL of the OMS ledger receiver (docs/cloud-protocol.md)' })),
    token: Type.Optional(Type.String({ description: 'secret: bearer token for the OMS; never logged' })),
    ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA bundle for the OMS certificate (default: the system CAs)' })),
    batchSize: Type.Integer({ minimum: 1, maximum: 10_000, default: 500 }),
    timeoutSeconds: Type.Number({ exclusiveMinimum: 0, default: 10 }),
  },
  'the HTTPS adapter that sends the ledger stream to the order management system',
);

const Cloud = Section(
  {
    enabled: Type.Boolean({ default: false }),
    url: Type.Optional(Type.String({ pattern: '^(mqtts?|wss?)://' })),
    username: Type.Optional(Type.String()),
    password: Type.Optional(Type.String({ description: 'secret: never logged' })),
    topicPrefix: Type.Optional(Type.String({ minLength: 1, description: 'default storehub/v1/<store id>/<hub id>' })),
    tls: CloudTls,
    sessionExpirySeconds: Type.Integer({ minimum: 0, default: 7 * 24 * 3600, description: 'how long the broker keeps the session while the hub is away' }),
    keepaliveSeconds: Type.Integer({ minimum: 5, maximum: 3600, default: 30 }),
    batchSize: Type.Integer({ minimum: 1, maximum: 10_000, default: 500, description: 'records per published batch' }),
    window: Type.Integer({ minimum: 1, maximum: 64, default: 8, description: 'unacknowledged batches in flight per stream' }),
    ackTimeoutSeconds: Type.Number({ exclusiveMinimum: 0, default: 30, description: 'resend from the last ack when none arrives for this long' }),
    replayRecordsPerSecond: Type.Integer({ minimum: 1, default: 50_000, description: 'pace of backlog replay after an outage' }),
    telemetryIntervalSeconds: Type.Number({ minimum: 1, default: 60 }),
    streams: Section(
      {
        ledger: StreamBudget(256 * 1024 * 1024, 'unsent stock deltas are folded per SKU and location above this; never dropped'),
        events: StreamBudget(128 * 1024 * 1024, 'oldest unsent events expire above this'),
        footfall: StreamBudget(32 * 1024 * 1024, 'oldest unsent aggregates expire above this'),
        telemetry: StreamBudget(16 * 1024 * 1024, 'telemetry is downsampled, then dropped, above this'),
      },
      'per-stream disk budgets of the outbox',
    ),
    oms: Oms,
  },
  'the uplink to the cloud: MQTT 5 link and OMS adapter (docs/cloud-protocol.md)',
);

const Ops = Section(
  {
    firmwareKeys: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'ed25519 public keys (PEM, or base64 of the 32 raw bytes) that may sign firmware images; none: firmware jobs are rejected',
    }),
    defaultJobTimeoutSeconds: Type.Integer({ minimum: 1, default: 3600 }),
  },
  'remote operations: jobs from HQ',
);

export const ConfigSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    version: Type.Literal(CONFIG_VERSION, { description: 'config format version; older files are migrated on load' }),
    store: Type.Object(
      {
        id: Id,
        name: Type.Optional(Type.String()),
        timezone: Type.String({ default: 'UTC' }),
      },
      { additionalProperties: false },
    ),
    hubId: Type.Optional(Id),
    dataDir: Type.String({ minLength: 1, default: './data' }),
    log: Section(
      {
        level: Type.Union(
          ['fatal', 'error', 'warn', 'info', 'debug', 'trace'].map((l) => Type.Literal(l)),
          { default: 'info' },
        ),
      },
      'logging',
    ),
    api: Api,
    broker: Broker,
    database: Database,
    devices: Type.Array(Device, { default: [] }),
    cameras: Type.Array(Camera, { default: [] }),
    cloud: Cloud,
    ops: Ops,
    simulation: Section(
      {
        enabled: Type.Boolean({
          default: false,
          description: 'start a simulator for every device whose class has one (the demo store); never on a real store',
        }),
        cloudReceiver: Type.Boolean({
          default: false,
          description: 'with simulation on: run the reference OMS receiver in process at cloud.oms.url (loopback http) so the demo syncs',
        }),
      },
      'simulated devices speaking the real protocols',
    ),
  },
  { additionalProperties: false, $id: 'https://storehub.dev/schema/config-v1.json', title: 'storehub configuration' },
);

export type HubConfig = Static<typeof ConfigSchema>;
export type DeviceConfig = HubConfig['devices'][number];
export type BrokerLimitsConfig = HubConfig['broker']['limits'];
