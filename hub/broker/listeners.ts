/**
 * The broker's network listeners: plain TCP always, TLS and WebSocket when configured.
 * Each accepted stream gets the packet size guard before aedes sees a byte.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer as createTcpServer, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import type { Aedes } from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { HubConfig } from '../config/schema.js';
import { HubError } from '../sdk/errors.js';
import { guardPacketSize } from './packet-size-guard.js';

export interface ListenerAddresses {
  tcp?: string;
  tls?: string;
  ws?: string;
}

interface Hooks {
  onOversize(reason: string): void;
}

function listen(server: Server, port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(new HubError('HUB_ERR_BROKER_LISTEN', `cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const a = server.address() as AddressInfo;
      resolve(`${a.address}:${a.port}`);
    });
  });
}

export async function openListeners(aedes: Aedes, config: HubConfig['broker'], hooks: Hooks): Promise<{ servers: Server[]; addresses: ListenerAddresses }> {
  const { maxPacketBytes, maxClients } = config.limits;
  const accept = (stream: Duplex) => {
    guardPacketSize(stream, maxPacketBytes, hooks.onOversize);
    aedes.handle(stream);
  };
  const servers: Server[] = [];
  const addresses: ListenerAddresses = {};
  try {
    const tcp = createTcpServer({ noDelay: true }, accept);
    // Sockets beyond this are refused by the kernel accept path before any work is done; the
    // headroom lets refused devices still receive a CONNACK telling them why.
    tcp.maxConnections = maxClients + 100;
    servers.push(tcp);
    addresses.tcp = await listen(tcp, config.port, config.host);

    if (config.tls) {
      const tls = config.tls;
      const server = createTlsServer(
        {
          cert: readFileSync(tls.cert),
          key: readFileSync(tls.key),
          ...(tls.ca ? { ca: readFileSync(tls.ca) } : {}),
          requestCert: tls.requireClientCert,
          rejectUnauthorized: tls.requireClientCert,
        },
        accept,
      );
      server.maxConnections = maxClients + 100;
      servers.push(server);
      addresses.tls = await listen(server, tls.port, config.host);
    }

    if (config.websocket) {
      const http = createHttpServer();
      const wss = new WebSocketServer({ server: http, path: config.websocket.path, maxPayload: maxPacketBytes + 16 });
      wss.on('connection', (ws) => accept(createWebSocketStream(ws)));
      servers.push(http as unknown as Server);
      addresses.ws = await listen(http as unknown as Server, config.websocket.port, config.host);
    }
  } catch (err) {
    await closeListeners(servers);
    throw err;
  }
  return { servers, addresses };
}

/**
 * Stops accepting new connections at once; the promise settles when the existing connections,
 * which the broker closes itself, are gone.
 */
export function closeListeners(servers: Server[]): Promise<void> {
  return Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve())))).then(() => undefined);
}
