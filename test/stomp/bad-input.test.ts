import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@stomp/stompjs';
import type { StompFrame } from '../../src/codec/stomp/index.js';
import { within } from '../helpers/mqtt-client.js';
import {
  closeStomp,
  connectStomp,
  header,
  type Inbox,
  RawStomp,
  type StompTestBroker,
  sendConfirmed,
  startStompBroker,
  subscribe,
} from '../helpers/stomp-client.js';

/**
 * Bad input from raw sockets: each gets an ERROR frame with a `message` header (and the
 * offending frame's receipt as `receipt-id`) and is closed, while a healthy stompjs pair on the
 * same broker keeps exchanging messages.
 */
describe('STOMP bad input costs only its sender', () => {
  let b: StompTestBroker;
  let sender: Client;
  let receiver: Client;
  let inbox: Inbox;
  let sent = 0;

  before(async () => {
    b = await startStompBroker({ stomp: { maxFrameSize: 16 * 1024, maxHeaders: 16, maxHeaderLength: 1024 } });
    sender = await connectStomp({ port: b.port });
    receiver = await connectStomp({ url: b.wsUrl });
    inbox = await subscribe(receiver, '/topic/healthy');
  });

  after(async () => {
    await closeStomp(sender);
    await closeStomp(receiver);
    await b.close();
  });

  /** The healthy pair exchanges one more message. */
  async function healthy(): Promise<void> {
    const body = `m${sent++}`;
    await sendConfirmed(sender, '/topic/healthy', body);
    assert.equal((await within(inbox.next(sent - 1), body)).body, body);
  }

  /** Sends `bytes` (after CONNECT unless `connect` is false) and returns the ERROR that closed it. */
  async function refused(bytes: Buffer | string, connect = true, end = false): Promise<StompFrame> {
    const raw = connect ? await RawStomp.connect(b.port) : await RawStomp.open(b.port);
    raw.write(bytes);
    if (end) raw.socket.end();
    const frames = await within(raw.untilClosed(), 'the broker closing the connection');
    const error = frames.at(-1);
    assert.equal(error?.command, 'ERROR', `got ${raw.describe()}`);
    assert.ok((header(error!, 'message') ?? '').length > 0);
    await healthy();
    return error!;
  }

  test('a frame before CONNECT', async () => {
    const error = await refused('SEND\ndestination:/topic/healthy\nreceipt:early\n\nx\0', false);
    assert.match(header(error, 'message')!, /expected CONNECT/);
    assert.equal(header(error, 'receipt-id'), 'early');
  });

  test('an unknown command', async () => {
    const error = await refused('PUBLISH\ndestination:/topic/healthy\n\nx\0');
    assert.match(header(error, 'message')!, /unknown command/);
  });

  test('a server frame sent by a client', async () => {
    const error = await refused('MESSAGE\ndestination:/topic/healthy\nreceipt:r\n\nx\0');
    assert.match(header(error, 'message')!, /not a client frame/);
    assert.equal(header(error, 'receipt-id'), 'r');
  });

  test('a bad escape in a 1.2 header', async () => {
    const error = await refused('SEND\ndestination:/topic/healthy\nx-bad:a\\tb\n\nx\0');
    assert.match(header(error, 'message')!, /escape/);
  });

  test('a header line over the limit', async () => {
    const error = await refused(`SEND\ndestination:/topic/healthy\nx-huge:${'h'.repeat(2000)}\n\nx\0`);
    assert.match(header(error, 'message')!, /header line/);
  });

  test('too many headers', async () => {
    const headers = Array.from({ length: 20 }, (_, i) => `x-${i}:v\n`).join('');
    const error = await refused(`SEND\ndestination:/topic/healthy\n${headers}\nx\0`);
    assert.match(header(error, 'message')!, /more than 16 headers/);
  });

  test('a frame over the size limit', async () => {
    const error = await refused(`SEND\ndestination:/topic/healthy\ncontent-length:${64 * 1024}\n\n`);
    assert.match(header(error, 'message')!, /maximum frame size/);
  });

  test('no NUL after a content-length body', async () => {
    const error = await refused('SEND\ndestination:/topic/healthy\ncontent-length:3\n\nabcX\0');
    assert.match(header(error, 'message')!, /no NUL/);
  });

  test('a truncated frame, then the client closes its side', async () => {
    const error = await refused('SEND\ndestination:/topic/healthy\ncontent-length:10\n\nabc', true, true);
    assert.match(header(error, 'message')!, /truncated frame/);
  });

  test('a SEND without a destination, or to an unknown kind of destination', async () => {
    const missing = await refused('SEND\nreceipt:r1\n\nx\0');
    assert.equal(header(missing, 'message'), "SEND needs a 'destination' header");
    assert.equal(header(missing, 'receipt-id'), 'r1');
    const unknown = await refused('SEND\ndestination:/exchange/x\n\nx\0');
    assert.match(header(unknown, 'message')!, /invalid destination/);
    const wildcard = await refused('SEND\ndestination:/topic/a.#\n\nx\0');
    assert.match(header(wildcard, 'message')!, /no wildcards/);
  });

  test('NACK in STOMP 1.0, CONNECT twice, an unknown subscription', async () => {
    const old = await RawStomp.connect(b.port, [['accept-version', '1.0']]);
    old.write('NACK\nmessage-id:1\n\n\0');
    assert.match(header((await old.untilClosed()).at(-1)!, 'message')!, /NACK is not part of STOMP 1.0/);
    const twice = await refused('CONNECT\naccept-version:1.2\n\n\0');
    assert.match(header(twice, 'message')!, /already connected/);
    const unknown = await refused('UNSUBSCRIBE\nid:nope\n\n\0');
    assert.match(header(unknown, 'message')!, /no subscription/);
  });

  test('everything sent by the healthy pair arrived, in order', () => {
    assert.deepEqual(
      inbox.messages.map((m) => m.body),
      Array.from({ length: sent }, (_, i) => `m${i}`),
    );
  });
});
