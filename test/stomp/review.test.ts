import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connackOf, id, mqttConnect, within } from '../helpers/mqtt-client.js';
import {
  closeStomp,
  connectStomp,
  header,
  RawStomp,
  type StompTestBroker,
  sendConfirmed,
  startStompBroker,
  subscribe,
} from '../helpers/stomp-client.js';

/**
 * Review findings: each test fails while its defect is there. Raw frames where a well-behaved
 * client would hide the problem.
 */
describe('STOMP review', () => {
  let b: StompTestBroker;
  before(async () => {
    b = await startStompBroker({ queues: { maxMessages: 2 } });
  });
  after(() => b.close());

  // STOMP 1.2 "COMMIT" / issue 6: "SENDs and ACKs inside BEGIN/COMMIT take effect together".
  test('a COMMIT one of whose SENDs a full queue refuses applies none of them', async () => {
    const raw = await RawStomp.connect(b.port);
    raw.send('BEGIN', [['transaction', 't']]);
    for (const n of [1, 2, 3])
      raw.send(
        'SEND',
        [
          ['destination', '/queue/atomic'],
          ['transaction', 't'],
        ],
        `m${n}`,
      );
    raw.send('COMMIT', [
      ['transaction', 't'],
      ['receipt', 'c'],
    ]);
    const frames = await within(raw.untilClosed(), 'the COMMIT answered');
    assert.equal(frames.at(-1)?.command, 'ERROR');
    // The client was told the COMMIT failed: nothing of it may have taken effect.
    assert.equal(b.broker.broker.queues.get('atomic')?.depth ?? 0, 0);
  });

  // STOMP 1.0 "UNSUBSCRIBE": by destination, or by id when the SUBSCRIBE had one.
  test('a 1.0 client unsubscribes by destination a subscription it made with an id', async () => {
    const raw = await RawStomp.connect(b.port, [['accept-version', '1.0']]);
    assert.equal(raw.version, '1.0');
    raw.send('SUBSCRIBE', [
      ['destination', '/topic/old.unsub'],
      ['id', 'mine'],
    ]);
    raw.send('UNSUBSCRIBE', [
      ['destination', '/topic/old.unsub'],
      ['receipt', 'u'],
    ]);
    const answer = await within(raw.nextFrame(1), 'the UNSUBSCRIBE answered');
    assert.equal(answer.command, 'RECEIPT', `got ${header(answer, 'message')}`);
    raw.close();
  });

  // STOMP 1.1 "Value Encoding": only \n \c \\ are defined; "undefined escape sequences such as
  // \t MUST be treated as a fatal protocol error" by the receiver, so \r is one for a 1.1 client.
  test('a 1.1 MESSAGE carries no \\r escape (1.1 does not define it)', async () => {
    const raw = await RawStomp.connect(b.port, [['accept-version', '1.1']]);
    assert.equal(raw.version, '1.1');
    const bytes: Buffer[] = [];
    raw.socket.on('data', (chunk: Buffer) => bytes.push(chunk));
    raw.send('SUBSCRIBE', [
      ['destination', '/topic/cr'],
      ['id', '0'],
      ['receipt', 's'],
    ]);
    await raw.nextFrame(1);
    const mqtt = mqttConnect(b.mqttUrl, { protocolVersion: 5, clientId: id('cr') });
    await connackOf(mqtt);
    await mqtt.publishAsync('cr', 'x', { qos: 1, properties: { userProperties: { note: 'a\rb' } } });
    await within(raw.nextFrame(2), 'the MESSAGE');
    assert.ok(!Buffer.concat(bytes).includes('\\r'), 'a \\r escape went to a 1.1 client');
    await mqtt.endAsync();
    raw.close();
  });

  // The decoder takes a 1.1 `\r` escape leniently, but the encoder cannot write one back for 1.1:
  // a receipt id holding a CR is answered with an ERROR, and the broker serves the next client.
  test('a 1.1 receipt id with an escaped CR gets an ERROR, not a broken broker', async () => {
    const raw = await RawStomp.connect(b.port, [['accept-version', '1.1']]);
    raw.write('SEND\ndestination:/topic/cr.receipt\nreceipt:a\\rb\n\nbody\0');
    const frames = await within(raw.untilClosed(), 'the SEND answered');
    assert.equal(frames.at(-1)?.command, 'ERROR');
    const next = await RawStomp.connect(b.port, [['accept-version', '1.1']]);
    next.send('SEND', [
      ['destination', '/topic/cr.receipt'],
      ['receipt', 'ok'],
    ]);
    assert.equal((await within(next.nextFrame(1), 'the RECEIPT')).command, 'RECEIPT');
    next.close();
  });

  // STOMP 1.2 "MESSAGE": "a message-id header with a unique identifier for that message".
  test('two different messages never share a message-id, across connections', async () => {
    const ids = new Map<string, string>();
    for (const body of ['first', 'second']) {
      const client = await connectStomp({ port: b.port });
      const inbox = await subscribe(client, '/topic/ids');
      await sendConfirmed(client, '/topic/ids', body);
      const message = await within(inbox.next(), body);
      const messageId = message.headers['message-id']!;
      assert.equal(
        ids.get(messageId),
        undefined,
        `message-id ${messageId} named '${ids.get(messageId)}' too`,
      );
      ids.set(messageId, body);
      await closeStomp(client);
    }
  });

  // Cross-protocol: an MQTT message the broker accepts (mqtt.maxPacketSize) reaches STOMP
  // subscribers too; a subscriber that reads is not a "slow consumer".
  test('a large MQTT message the broker accepted reaches a reading STOMP subscriber', async () => {
    const big = await startStompBroker({ mqtt: { maxPacketSize: 8 * 1024 * 1024 } });
    try {
      const client = await connectStomp({ port: big.port });
      // Either the next RECEIPT comes, or the broker's ERROR (then close) says why not.
      let failed: (reason: Error) => void = () => {};
      const refused = new Promise<never>((_, reject) => {
        failed = reject;
      });
      client.onStompError = (frame) => failed(new Error(`ERROR: ${frame.headers.message}`));
      const inbox = await subscribe(client, '/topic/big');
      const mqtt = mqttConnect(big.mqttUrl, { protocolVersion: 5, clientId: id('big') });
      await connackOf(mqtt);
      await mqtt.publishAsync('big', Buffer.alloc(3 * 1024 * 1024, 0x61), { qos: 1 });
      const message = await within(Promise.race([inbox.next(), refused]), 'the 3 MiB MESSAGE');
      assert.equal(message.binaryBody.length, 3 * 1024 * 1024);
      // It read everything, so it is no slow consumer: it stays connected.
      await within(Promise.race([sendConfirmed(client, '/topic/big', 'after'), refused]), 'a RECEIPT');
      await mqtt.endAsync();
      await closeStomp(client);
      await mqtt.endAsync();
    } finally {
      await big.close();
    }
  });
});
