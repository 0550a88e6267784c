import assert from 'node:assert/strict';
import { scramAuthentication } from '../../src/auth/scram.js';
import {
  deriveScramCredential,
  SCRAM_SHA_256,
  type ScramCredential,
} from '../../src/auth/scram-credential.js';
import type { AuthConversation, ClientInfo } from '../../src/broker/hooks.js';
import type { AuthPacket, ConnectPacket, Packet } from '../../src/codec/mqtt/index.js';
import { until } from './broker.js';
import type { RawClient } from './raw-client.js';
import { ScramClient } from './scram-client.js';

/**
 * MQTT 5 enhanced authentication with SCRAM-SHA-256 for the end-to-end tests: a hook over two
 * users (alice/wonderland, bob/builder) and the raw client's side of the exchanges, packet by packet.
 */

const ITERATIONS = 4096;
const credentials = new Map<string, ScramCredential>([
  ['alice', await deriveScramCredential('wonderland', ITERATIONS)],
  ['bob', await deriveScramCredential('builder', ITERATIONS)],
]);

/** The `enhancedAuthentication` hook offering SCRAM-SHA-256 to alice and bob. */
export const scramHook: (method: string, client: ClientInfo) => AuthConversation | undefined =
  scramAuthentication((name) => credentials.get(name), { fakeIterations: ITERATIONS });

/** A 5.0 CONNECT asking for SCRAM-SHA-256 with `data` (client-first-message). */
export function connectPacket(
  clientId: string,
  data: Buffer,
  fields: Partial<ConnectPacket> = {},
): ConnectPacket {
  return {
    type: 'connect',
    protocolVersion: 5,
    clean: true,
    keepAlive: 60,
    clientId,
    properties: { authenticationMethod: SCRAM_SHA_256, authenticationData: data },
    ...fields,
  };
}

/** An AUTH packet with `method` (SCRAM-SHA-256 unless told) and optional data. */
export function authPacket(reasonCode: number, data: Buffer | undefined, method = SCRAM_SHA_256): AuthPacket {
  return {
    type: 'auth',
    reasonCode,
    properties: { authenticationMethod: method, ...(data === undefined ? {} : { authenticationData: data }) },
  };
}

/** Sends a SCRAM CONNECT and returns the server's AUTH 0x18, checked. */
export async function challenge(
  r: RawClient,
  side: ScramClient,
  clientId: string,
  fields = {},
): Promise<AuthPacket> {
  r.send(connectPacket(clientId, side.first(), fields));
  const auth = await r.next('auth');
  assert.equal(auth.reasonCode, 0x18, 'Continue authentication (MQTT-4.12.0-2)');
  assert.equal(auth.properties?.authenticationMethod, SCRAM_SHA_256, 'the same method (MQTT-4.12.0-5)');
  return auth;
}

/** Takes an open raw 5.0 client through the whole SCRAM exchange as alice; fails unless CONNACK 0x00 verifies. */
export async function scramHandshake(
  r: RawClient,
  clientId: string,
  fields: Partial<ConnectPacket> = {},
): Promise<RawClient> {
  const side = new ScramClient('alice', 'wonderland');
  const auth = await challenge(r, side, clientId, fields);
  r.send(authPacket(0x18, side.final(auth.properties?.authenticationData)));
  const connack = await r.next('connack');
  assert.equal(connack.reasonCode, 0);
  assert.ok(side.verify(connack.properties?.authenticationData));
  return r;
}

/** Sends AUTH 0x19 and answers the challenge as `user`; returns what the broker answered last. */
export async function reauthenticate(
  r: RawClient,
  user: string,
  password: string,
): Promise<{ side: ScramClient; last: Packet }> {
  const side = new ScramClient(user, password);
  r.send(authPacket(0x19, side.first()));
  const auth = await r.next('auth');
  assert.equal(auth.reasonCode, 0x18);
  r.send(authPacket(0x18, side.final(auth.properties?.authenticationData)));
  await until(() => r.packets.some(isAnswer), 'AUTH or DISCONNECT');
  return { side, last: r.packets.splice(r.packets.findIndex(isAnswer), 1)[0]! };
}

function isAnswer(packet: Packet): boolean {
  return packet.type === 'auth' || packet.type === 'disconnect';
}
