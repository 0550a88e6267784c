import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach } from 'node:test';
import type { MqttClient } from 'mqtt';
import { Broker, type BrokerOptions } from '../../src/broker/broker.js';
import type { DropReason } from '../../src/broker/hooks.js';
import {
  type ConnackPacket,
  encode,
  MqttDecoder,
  type Packet,
  type ProtocolVersion,
} from '../../src/codec/mqtt/index.js';
import { Limits, type LimitsOptions } from '../../src/limits/index.js';
import {
  type MqttConnection,
  type MqttHandler,
  type MqttOptions,
  mqttHandler,
  shedUnderPressure,
} from '../../src/protocol/mqtt/index.js';
import { MemoryStore } from '../../src/store/memory/memory-store.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import { mqttConnect } from '../helpers/mqtt-client.js';
import { RawClient } from '../helpers/raw-client.js';

/**
 * A broker core with the MQTT handler over TCP, built by hand so a test can give it limits
 * (and a memory watch with an injected source) and reach its connections.
 */
export interface LimitedBroker {
  broker: Broker;
  handler: MqttHandler;
  port: number;
  url: string;
  /** Every `dropped` event so far, as client id and reason. */
  drops: { clientId: string; reason: DropReason; payload: string }[];
  /** The live connection of a client id. */
  connection(clientId: string): MqttConnection | undefined;
}

/** No limits unless given: every gate limit off and no memory watch. */
export const NO_LIMITS: Partial<LimitsOptions> = {
  maxConnections: 0,
  maxConnectionsPerAddress: 0,
  connectionRatePerAddress: 0,
  memoryHighWaterMark: -1,
};

/** What a test opens, closed after it. */
export interface LimitedTests {
  start(settings?: {
    broker?: Partial<Omit<BrokerOptions, 'store'>>;
    mqtt?: Partial<MqttOptions>;
    limits?: Limits | Partial<LimitsOptions>;
  }): Promise<LimitedBroker>;
  /** MQTT.js, no reconnects, ended forcibly after the test. */
  client(url: string, options: Parameters<typeof mqttConnect>[1]): MqttClient;
  /** A RawClient through CONNECT/CONNACK, ended after the test. */
  raw(port: number, connect: Parameters<typeof RawClient.connect>[1]): Promise<RawClient>;
  /** Registers a cleanup. */
  defer(cleanup: () => unknown): void;
}

/** Cleanups for the tests of a file: what each test opens is closed after it, newest first. */
export function limitedTests(): LimitedTests {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return {
    async start(settings = {}) {
      const broker = new Broker({
        onError: (e) => console.error('broker error:', e),
        ...settings.broker,
        store: new MemoryStore(),
      });
      await broker.start();
      const limits = settings.limits ?? NO_LIMITS;
      const handler = mqttHandler(broker, settings.mqtt, limits);
      // The owner of a shared Limits wires its memory watch to the broker, as Cicada does.
      if (limits instanceof Limits && limits.memory !== undefined) shedUnderPressure(broker, limits.memory);
      const listener = await new TcpTransport().listen(new URL('mqtt://127.0.0.1:0'), handler);
      cleanups.push(async () => {
        await listener.close();
        await broker.close();
        for (const c of handler.connections) c.stream.destroy();
        handler.limits?.close();
      });
      const drops: LimitedBroker['drops'] = [];
      broker.on('dropped', (message, clientId, reason) =>
        drops.push({ clientId, reason, payload: message.payload.toString() }),
      );
      return {
        broker,
        handler,
        port: listener.port,
        url: `mqtt://127.0.0.1:${listener.port}`,
        drops,
        connection: (clientId) => [...handler.connections].find((c) => c.client?.clientId === clientId),
      };
    },
    client(url, options) {
      const c = mqttConnect(url, options);
      cleanups.push(() => c.end(true));
      return c;
    },
    async raw(port, connectPacket) {
      const r = await RawClient.connect(port, connectPacket);
      cleanups.push(() => r.end());
      return r;
    },
    defer(cleanup) {
      cleanups.push(cleanup);
    },
  };
}

/** How a connection attempt ended: a CONNACK (accepted or not), or the socket closed without one. */
export type Attempt = { connack: ConnackPacket; socket: Socket } | { closedWithoutConnack: true };

/**
 * Opens a socket from `localAddress` (any 127.x.y.z works on Linux loopback), sends CONNECT
 * and reports what came back. An accepted socket stays open (the caller's `sockets` list).
 */
export async function attempt(
  port: number,
  options: { localAddress?: string; version?: ProtocolVersion; clientId?: string; sockets: Socket[] },
): Promise<Attempt> {
  const version = options.version ?? 5;
  const socket = connect({ host: '127.0.0.1', port, localAddress: options.localAddress ?? '127.0.0.1' });
  options.sockets.push(socket);
  socket.on('error', () => {});
  await once(socket, 'connect');
  return new Promise((resolve) => {
    const decoder = new MqttDecoder(
      (packet: Packet) => {
        if (packet.type === 'connack') resolve({ connack: packet, socket });
      },
      { protocolVersion: version },
    );
    socket.on('data', (chunk: Buffer) => decoder.feed(chunk));
    socket.on('close', () => resolve({ closedWithoutConnack: true }));
    socket.write(
      encode(
        {
          type: 'connect',
          protocolVersion: version,
          clean: true,
          keepAlive: 60,
          clientId: options.clientId ?? '',
        },
        version,
      ),
    );
  });
}

/** The CONNACK code of an attempt, or 'closed' when the broker closed it without one. */
export function outcome(result: Attempt): number | 'closed' {
  return 'connack' in result ? result.connack.reasonCode : 'closed';
}
