import { randomBytes } from 'node:crypto';
import type { ClientInfo, ConnectRefusal } from '../../broker/hooks.js';
import { getHeader, type StompFrame, type StompVersion } from '../../codec/stomp/index.js';
import { cicadaVersion } from '../../observe/version.js';
import type { StompConnection } from './connection.js';
import { StompViolation } from './errors.js';

/** The versions this server speaks, preferred first. */
const VERSIONS: readonly StompVersion[] = ['1.2', '1.1', '1.0'];
const SUPPORTED = '1.0,1.1,1.2';

/** What each refusal tells the client in the ERROR frame. */
const REFUSALS: Record<ConnectRefusal, string> = {
  'bad-credentials': 'access refused: bad login or passcode',
  'not-authorized': 'access refused: not authorized',
  banned: 'access refused: banned',
  'server-busy': 'server busy: try again later',
  'server-unavailable': 'server unavailable',
  'client-id-invalid': 'access refused: client id not allowed',
};

/** Numbers the connections of this process, so that every client id is unique. */
let connectionCount = 0;

/**
 * The broker client id of a STOMP connection: `stomp:<host>-<n>`, from the `host` header (its
 * letters, digits and `.-_` only) or a random name; unique among the live ones.
 */
function clientIdFor(host: string | undefined): string {
  const name = host?.replace(/[^\w.-]/g, '').slice(0, 64) || randomBytes(6).toString('base64url');
  return `stomp:${name}-${++connectionCount}`;
}

/** STOMP 1.2 "Protocol Negotiation": the highest version both speak; no header means 1.0. */
function negotiate(frame: StompFrame): StompVersion {
  const accepted = getHeader(frame, 'accept-version');
  if (accepted === undefined) return '1.0';
  const offered = new Set(accepted.split(',').map((v) => v.trim()));
  const version = VERSIONS.find((v) => offered.has(v));
  if (version === undefined)
    throw new StompViolation(`Supported protocol versions are ${SUPPORTED}`, undefined, [
      ['version', SUPPORTED],
    ]);
  return version;
}

/** The client's `heart-beat: cx,cy` (STOMP 1.2 "Heart-beating"); 0,0 when absent. */
function clientHeartbeat(frame: StompFrame): [number, number] {
  const text = getHeader(frame, 'heart-beat');
  if (text === undefined) return [0, 0];
  const match = /^\s*([0-9]{1,9})\s*,\s*([0-9]{1,9})\s*$/.exec(text);
  if (match === null)
    throw new StompViolation(`heart-beat '${text}' is not two whole numbers of milliseconds`);
  return [Number(match[1]), Number(match[2])];
}

/**
 * CONNECT or STOMP (STOMP 1.2 "Connecting"): negotiate the version and heart-beats, connect a
 * clean session through the broker (login and passcode are its username and password, so the
 * same authentication and ACL apply as to MQTT), answer CONNECTED. A refusal is an ERROR
 * naming the reason, then the connection closes.
 */
export async function handleConnect(conn: StompConnection, frame: StompFrame): Promise<void> {
  conn.state = 'connecting';
  const version = negotiate(frame);
  // Now, before any await: frames the client sent right behind CONNECT are decoded with it.
  conn.decodeAs(version);
  const [clientSends, clientWants] = clientHeartbeat(frame);
  const { heartbeatSend, heartbeatReceive } = conn.options;
  // Each side sends no more often than the other can take (STOMP 1.2 "Heart-beating").
  const sendEvery = heartbeatSend === 0 || clientWants === 0 ? 0 : Math.max(heartbeatSend, clientWants);
  const expectEvery =
    heartbeatReceive === 0 || clientSends === 0 ? 0 : Math.max(heartbeatReceive, clientSends);

  const login = getHeader(frame, 'login');
  const passcode = getHeader(frame, 'passcode');
  const { info } = conn;
  // A verified client certificate names the user, whatever CONNECT says (TLS `usernameFrom`).
  const username = info.certificate?.username ?? login;
  const clientId = clientIdFor(getHeader(frame, 'host'));
  const client: ClientInfo = {
    clientId,
    ...(username === undefined ? {} : { username }),
    protocol: 'stomp',
    protocolVersion: Number(version.replace('.', '')),
    ...(info.remoteAddress === undefined ? {} : { remoteAddress: info.remoteAddress }),
    ...(info.remotePort === undefined ? {} : { remotePort: info.remotePort }),
    listener: info.listener,
    secure: info.secure,
    ...(info.certificate === undefined ? {} : { certificate: info.certificate }),
    keepAlive: Math.ceil(expectEvery / 1000),
    connectedAt: Date.now(),
  };
  const outcome = await conn.broker.connect(
    {
      clientId,
      clean: true,
      expiryInterval: 0,
      ...(login === undefined ? {} : { username: login }),
      ...(passcode === undefined ? {} : { password: Buffer.from(passcode) }),
      client,
    },
    conn,
  );
  if (conn.closed) {
    // The socket went away while we waited: let go of the session we were given.
    if (outcome.ok)
      conn.broker.disconnect(outcome.session, conn, { reason: 'socket-closed', sendWill: false });
    return;
  }
  if (!outcome.ok) throw new StompViolation(REFUSALS[outcome.refusal]);
  conn.session = outcome.session;
  conn.client = client;
  conn.state = 'connected';
  conn.version = version;
  conn.sendFrame('CONNECTED', [
    ['version', version],
    ['heart-beat', `${heartbeatSend},${heartbeatReceive}`],
    ['session', clientId],
    ['server', `cicada/${cicadaVersion()}`],
  ]);
  conn.startHeartbeats(sendEvery, expectEvery);
}
