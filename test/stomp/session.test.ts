import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ClientInfo } from '../../src/index.js';
import { until } from '../helpers/broker.js';
import { within } from '../helpers/mqtt-client.js';
import {
  closeStomp,
  connectStomp,
  header,
  RawStomp,
  sendConfirmed,
  startStompBroker,
  subscribe,
} from '../helpers/stomp-client.js';

describe('STOMP heart-beats', () => {
  test('the server beats as agreed, closes a client silent past twice its interval, keeps one that beats', async () => {
    const b = await startStompBroker({ stomp: { heartbeatSend: 20, heartbeatReceive: 20 } });
    try {
      // heart-beat: cx,cy (STOMP 1.2 "Heart-beating"): this one sends none and wants ours.
      const listener = await RawStomp.connect(b.port, [['heart-beat', '0,20']]);
      assert.equal(header(listener.frames[0]!, 'heart-beat'), '20,20');
      await until(() => listener.heartbeats >= 3, 'server heart-beats');
      // A client that beats (stompjs, every 20 ms) stays through what follows.
      const beating = await connectStomp({ port: b.port }, { heartbeatOutgoing: 20, heartbeatIncoming: 20 });
      // This one promises a beat every 20 ms and then says nothing.
      const silent = await RawStomp.connect(b.port, [['heart-beat', '20,0']]);
      const frames = await within(silent.untilClosed(), 'the silent client closed');
      assert.equal(frames.at(-1)?.command, 'ERROR');
      assert.match(header(frames.at(-1)!, 'message') ?? '', /no heart-beat/);
      // The listener sent nothing either, but promised nothing: still open, still beaten.
      const beats = listener.heartbeats;
      await until(() => listener.heartbeats > beats, 'more server heart-beats');
      assert.equal(listener.isClosed, false);
      assert.equal(beating.connected, true);
      const inbox = await subscribe(beating, '/topic/alive');
      await sendConfirmed(beating, '/topic/alive', 'yes');
      assert.equal((await within(inbox.next(), 'MESSAGE')).body, 'yes');
      listener.close();
      await closeStomp(beating);
    } finally {
      await b.close();
    }
  });

  test('a malformed heart-beat header is an ERROR', async () => {
    const b = await startStompBroker();
    try {
      const raw = await RawStomp.open(b.port);
      raw.send('CONNECT', [
        ['accept-version', '1.2'],
        ['heart-beat', 'soon'],
      ]);
      const [error] = await raw.untilClosed();
      assert.equal(error?.command, 'ERROR');
      assert.match(header(error!, 'message') ?? '', /heart-beat/);
    } finally {
      await b.close();
    }
  });
});

describe('STOMP authentication and authorization', () => {
  test('login and passcode go through the authenticate hook; the ACL refuses SEND and SUBSCRIBE with an ERROR', async () => {
    const connected: ClientInfo[] = [];
    const b = await startStompBroker({
      hooks: {
        authenticate: ({ username, password }) =>
          username === 'alice' && password?.toString() === 'secret' ? true : { refuse: 'bad-credentials' },
        authorizePublish: (_client, message) => !message.topic.startsWith('secret/'),
        authorizeSubscribe: (_client, filter) => !filter.startsWith('secret/'),
      },
    });
    b.broker.on('clientConnected', (client) => connected.push(client));
    try {
      await assert.rejects(
        connectStomp({ port: b.port }, { connectHeaders: { login: 'alice', passcode: 'wrong' } }),
        /ERROR: access refused: bad login or passcode/,
      );
      await assert.rejects(connectStomp({ url: b.wsUrl }), /ERROR: access refused/);
      const alice = await connectStomp(
        { url: b.wsUrl },
        { connectHeaders: { login: 'alice', passcode: 'secret' } },
      );
      assert.equal(connected.length, 1);
      assert.equal(connected[0]!.username, 'alice');
      assert.equal(connected[0]!.protocol, 'stomp');
      assert.equal(connected[0]!.protocolVersion, 12);
      assert.match(connected[0]!.clientId, /^stomp:/);
      await closeStomp(alice);

      const credentials: [string, string][] = [
        ['login', 'alice'],
        ['passcode', 'secret'],
      ];
      const sender = await RawStomp.connect(b.port, credentials);
      sender.send(
        'SEND',
        [
          ['destination', '/topic/secret.plans'],
          ['receipt', 'r-7'],
        ],
        'x',
      );
      const sent = await sender.untilClosed();
      assert.equal(sent.at(-1)?.command, 'ERROR');
      assert.equal(header(sent.at(-1)!, 'message'), 'not authorized to send to /topic/secret.plans');
      assert.equal(header(sent.at(-1)!, 'receipt-id'), 'r-7');

      const reader = await RawStomp.connect(b.port, credentials);
      reader.send('SUBSCRIBE', [
        ['id', '0'],
        ['destination', '/topic/secret.#'],
      ]);
      const read = await reader.untilClosed();
      assert.equal(read.at(-1)?.command, 'ERROR');
      assert.equal(header(read.at(-1)!, 'message'), 'not authorized to subscribe to /topic/secret.#');
    } finally {
      await b.close();
    }
  });
});

describe('STOMP transactions', () => {
  test('COMMIT applies the SENDs together, ABORT discards them, an unknown transaction is an ERROR', async () => {
    const b = await startStompBroker();
    try {
      const client = await connectStomp({ port: b.port });
      const inbox = await subscribe(client, '/topic/tx.#');
      const committed = client.begin();
      client.publish({ destination: '/topic/tx.a', body: 'a1', headers: { transaction: committed.id } });
      client.publish({ destination: '/topic/tx.a', body: 'a2', headers: { transaction: committed.id } });
      // Outside the transaction: delivered at once, and before anything held.
      await sendConfirmed(client, '/topic/tx.sync', 's1');
      assert.equal((await within(inbox.next(), 's1')).body, 's1');
      assert.equal(inbox.messages.length, 1);
      committed.commit();
      assert.deepEqual(
        [(await within(inbox.next(), 'a1')).body, (await within(inbox.next(), 'a2')).body],
        ['a1', 'a2'],
      );
      const aborted = client.begin();
      client.publish({ destination: '/topic/tx.b', body: 'b', headers: { transaction: aborted.id } });
      aborted.abort();
      await sendConfirmed(client, '/topic/tx.sync', 's2');
      assert.equal((await within(inbox.next(), 's2')).body, 's2');
      assert.deepEqual(
        inbox.messages.map((m) => m.body),
        ['s1', 'a1', 'a2', 's2'],
      );
      await closeStomp(client);

      const raw = await RawStomp.connect(b.port);
      raw.send('COMMIT', [
        ['transaction', 'never-begun'],
        ['receipt', 'c'],
      ]);
      const frames = await raw.untilClosed();
      assert.equal(frames.at(-1)?.command, 'ERROR');
      assert.equal(header(frames.at(-1)!, 'receipt-id'), 'c');
      assert.match(header(frames.at(-1)!, 'message') ?? '', /no open transaction/);
    } finally {
      await b.close();
    }
  });

  test('a transaction left open at DISCONNECT is aborted', async () => {
    const b = await startStompBroker();
    try {
      const watcher = await connectStomp({ port: b.port });
      const inbox = await subscribe(watcher, '/topic/left.#');
      const raw = await RawStomp.connect(b.port);
      raw.send('BEGIN', [['transaction', 't']]);
      raw.send(
        'SEND',
        [
          ['destination', '/topic/left.open'],
          ['transaction', 't'],
        ],
        'never',
      );
      raw.send('DISCONNECT', [['receipt', 'bye']]);
      await raw.untilClosed();
      assert.equal(header(raw.frames.at(-1)!, 'receipt-id'), 'bye');
      await sendConfirmed(watcher, '/topic/left.sync', 'sync');
      assert.equal((await within(inbox.next(), 'sync')).body, 'sync');
      assert.deepEqual(
        inbox.messages.map((m) => m.body),
        ['sync'],
      );
      await closeStomp(watcher);
    } finally {
      await b.close();
    }
  });

  test('an ACK inside a transaction counts only once committed', async () => {
    const b = await startStompBroker({ stomp: { maxUnacknowledged: 1 } });
    try {
      const client = await connectStomp({ port: b.port });
      const inbox = await subscribe(client, '/topic/acked', { ack: 'client-individual' });
      for (const body of ['m1', 'm2', 'm3']) await sendConfirmed(client, '/topic/acked', body);
      const first = await within(inbox.next(), 'm1');
      const aborted = client.begin();
      first.ack({ transaction: aborted.id });
      aborted.abort();
      // Still unacknowledged: the one-message window stays full. A receipted frame proves it.
      await sendConfirmed(client, '/topic/other', 'sync');
      assert.equal(inbox.messages.length, 1);
      const committed = client.begin();
      first.ack({ transaction: committed.id });
      await sendConfirmed(client, '/topic/other', 'sync');
      assert.equal(inbox.messages.length, 1);
      committed.commit();
      assert.equal((await within(inbox.next(), 'm2')).body, 'm2');
      await closeStomp(client);
    } finally {
      await b.close();
    }
  });
});

describe('STOMP slow consumers', () => {
  test('a reader that stops reading: QoS 0 to it is dropped, QoS 1 waits and arrives once it reads again', async () => {
    const b = await startStompBroker({ stomp: { outboundSoftLimit: 1024 } });
    try {
      const reader = await RawStomp.connect(b.port);
      reader.send('SUBSCRIBE', [
        ['id', 's'],
        ['destination', '/topic/firehose.#'],
        ['receipt', 'subscribed'],
      ]);
      await reader.nextFrame(1);
      reader.socket.pause();
      let slow = false;
      b.broker.on('dropped', (_message, _clientId, reason) => {
        if (reason === 'slow-consumer') slow = true;
      });
      const payload = Buffer.alloc(4096, 'x');
      // Until the socket buffers are full and the broker drops for this reader.
      for (let round = 0; !slow && round < 10_000; round++) {
        for (let i = 0; i < 16; i++) await b.broker.publish({ topic: 'firehose/qos0', payload });
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.ok(slow, 'QoS 0 dropped for the slow reader');
      for (let i = 0; i < 10; i++)
        await b.broker.publish({ topic: 'firehose/qos1', payload: `q${i}`, qos: 1 });
      reader.socket.resume();
      await until(
        () => reader.frames.filter((f) => header(f, 'destination') === '/topic/firehose.qos1').length === 10,
        'every QoS 1 message',
      );
      assert.deepEqual(
        reader.frames
          .filter((f) => header(f, 'destination') === '/topic/firehose.qos1')
          .map((f) => f.body.toString()),
        Array.from({ length: 10 }, (_, i) => `q${i}`),
      );
      reader.close();
    } finally {
      await b.close();
    }
  });
});

describe('STOMP connect timeout', () => {
  test('a connection that sends no CONNECT in time gets an ERROR and is closed', async () => {
    const b = await startStompBroker({ stomp: { connectTimeout: 50 } });
    try {
      const idle = await RawStomp.open(b.port);
      idle.write('\n');
      const [error] = await within(idle.untilClosed(), 'the idle connection closed');
      assert.equal(error?.command, 'ERROR');
      assert.equal(header(error!, 'message'), 'no CONNECT within 50 ms');
    } finally {
      await b.close();
    }
  });
});
