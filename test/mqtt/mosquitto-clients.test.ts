import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { startBroker, type TestBroker, until } from '../helpers/broker.js';
import { id as uniqueId } from '../helpers/mqtt-client.js';
import { findBinary, type RunResult as Run, runProgram } from '../helpers/programs.js';

/**
 * Interoperability with Eclipse Mosquitto's command line clients (Debian package
 * `mosquitto-clients`): a second, independent MQTT implementation talking to Cicada.
 */

type Protocol = 'mqttv311' | 'mqttv5';

const PACKAGE_HINT = "install the Debian package 'mosquitto-clients' (apt-get install -y mosquitto-clients)";

const binaries = { pub: findBinary('mosquitto_pub'), sub: findBinary('mosquitto_sub') };

/** Fails the test, never skips it, when the Mosquitto clients are not installed. */
function requireMosquitto(): { pub: string; sub: string } {
  const missing = Object.entries({ mosquitto_pub: binaries.pub, mosquitto_sub: binaries.sub })
    .filter(([, path]) => path === undefined)
    .map(([name]) => name);
  if (missing.length > 0) throw new Error(`${missing.join(' and ')} not found on PATH: ${PACKAGE_HINT}`);
  return { pub: binaries.pub!, sub: binaries.sub! };
}

let t: TestBroker;
const children = new Set<ChildProcess>();
const clients: MqttClient[] = [];
const subscribedIds = new Set<string>();
const id = (prefix: string): string => uniqueId(`${prefix}-${process.pid}`);

/** Runs a Mosquitto client to its end; `after` kills what is left. */
function run(command: string, args: string[], timeoutMs = 15_000): Promise<Run> {
  return runProgram(command, args, { timeoutMs, track: children });
}

function ok(result: Run, what: string): Run {
  assert.equal(
    result.code,
    0,
    `${what} exited ${result.code ?? result.signal}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

function connection(protocol: Protocol, clientId: string): string[] {
  return ['-h', '127.0.0.1', '-p', String(t.port), '-V', protocol, '-i', clientId];
}

/** Starts mosquitto_sub and resolves once the broker has its subscription, so a publish after it is seen. */
async function subscriber(
  protocol: Protocol,
  args: string[],
  clientId = id('msub'),
): Promise<{ done: Promise<Run> }> {
  const { sub } = requireMosquitto();
  const done = run(sub, [...connection(protocol, clientId), '-W', '12', ...args]);
  let exited = false;
  done.then(
    () => {
      exited = true;
    },
    () => {
      exited = true;
    },
  );
  await until(() => subscribedIds.has(clientId) || exited, `mosquitto_sub ${clientId} to subscribe`);
  if (!subscribedIds.has(clientId)) {
    const result = await done;
    assert.fail(`mosquitto_sub exited before subscribing: ${result.code}\n${result.stderr}`);
  }
  // Wrapped: an async function returning a promise would wait for it.
  return { done };
}

async function publish(protocol: Protocol, args: string[], clientId = id('mpub')): Promise<Run> {
  const { pub } = requireMosquitto();
  return ok(await run(pub, [...connection(protocol, clientId), ...args]), 'mosquitto_pub');
}

before(async () => {
  t = await startBroker();
  t.broker.on('subscribed', (client) => subscribedIds.add(client.clientId));
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await t.close();
});

describe('mosquitto_pub to mosquitto_sub through Cicada', () => {
  for (const protocol of ['mqttv311', 'mqttv5'] as const) {
    for (const qos of [0, 1, 2] as const) {
      test(`QoS ${qos} with -V ${protocol}: delivered at QoS ${qos}, publisher acknowledged`, async () => {
        const topic = `mosq/${protocol}/q${qos}`;
        const sub = await subscriber(protocol, [
          '-t',
          topic,
          '-q',
          String(qos),
          '-C',
          '1',
          '-F',
          '%t|%q|%r|%p',
        ]);
        const pub = await publish(protocol, ['-d', '-t', topic, '-q', String(qos), '-m', `hello-${qos}`]);
        const received = ok(await sub.done, 'mosquitto_sub');
        assert.equal(received.stdout.trim(), `${topic}|${qos}|0|hello-${qos}`);
        // mosquitto_pub -d logs the acknowledgements it got (MQTT 4.3).
        const acks = [...pub.stdout.matchAll(/received (PUBACK|PUBREC|PUBCOMP)/g)].map((m) => m[1]);
        assert.deepEqual(acks, qos === 0 ? [] : qos === 1 ? ['PUBACK'] : ['PUBREC', 'PUBCOMP']);
      });
    }

    test(`mosquitto_pub -r stores a retained message that a later mosquitto_sub gets with RETAIN=1 (-V ${protocol})`, async () => {
      const topic = `mosq/${protocol}/retained`;
      await publish(protocol, ['-t', topic, '-q', '1', '-r', '-m', 'kept']);
      const { sub } = requireMosquitto();
      const received = ok(
        await run(sub, [
          ...connection(protocol, id('msub')),
          '-W',
          '12',
          '-t',
          topic,
          '-q',
          '1',
          '-C',
          '1',
          '-F',
          '%r|%q|%p',
        ]),
        'mosquitto_sub',
      );
      assert.equal(received.stdout.trim(), '1|1|kept');
    });

    test(`mosquitto_sub -c keeps a persistent session that receives what was published while it was offline (-V ${protocol})`, async () => {
      const { sub } = requireMosquitto();
      const clientId = id(`persist-${protocol}`);
      const topic = `mosq/${protocol}/offline`;
      // First visit: subscribe at QoS 1 with a persistent session, then leave (-E: exit once subscribed).
      ok(
        await run(sub, [...connection(protocol, clientId), '-c', '-q', '1', '-t', topic, '-E']),
        'mosquitto_sub -E',
      );
      const session = t.broker.broker.sessions.get(clientId);
      assert.ok(session !== undefined, 'the session outlives the connection');
      await until(() => !session.connected, 'the first mosquitto_sub to disconnect');

      await publish(protocol, ['-t', topic, '-q', '1', '-m', 'offline-1']);
      await publish(protocol, ['-t', topic, '-q', '2', '-m', 'offline-2']);
      assert.equal(session.queuedCount, 2);

      // Second visit with the same id and -c: the queued messages arrive, in order.
      const received = ok(
        await run(sub, [
          ...connection(protocol, clientId),
          '-c',
          '-q',
          '1',
          '-t',
          topic,
          '-C',
          '2',
          '-W',
          '12',
          '-F',
          '%q|%p',
        ]),
        'mosquitto_sub -c',
      );
      assert.deepEqual(received.stdout.trim().split('\n'), ['1|offline-1', '1|offline-2']);
      // (Whether the last PUBACK reaches us is up to mosquitto_sub: exiting with the SUBACK unread,
      // its socket may close with a reset that discards what it had just queued.)
    });
  }
});

describe('MQTT 5 properties between Mosquitto and MQTT.js', () => {
  test('user properties from mosquitto_pub -D publish user-property reach MQTT.js and mosquitto_sub in order', async () => {
    const topic = 'mosq/v5/user-property';
    const js = await mqtt.connectAsync(t.url, { protocolVersion: 5, clientId: id('js'), reconnectPeriod: 0 });
    clients.push(js);
    await js.subscribeAsync(topic, { qos: 1 });
    const got: IPublishPacket[] = [];
    js.on('message', (_topic, _payload, packet) => got.push(packet));
    const sub = await subscriber('mqttv5', ['-t', topic, '-q', '1', '-C', '1', '-F', '%P|%p']);

    await publish('mqttv5', [
      '-t',
      topic,
      '-q',
      '1',
      '-m',
      'with-props',
      '-D',
      'publish',
      'user-property',
      'k',
      'v',
      '-D',
      'publish',
      'user-property',
      'colour',
      'blue',
    ]);
    await until(() => got.length === 1, 'the message at MQTT.js');
    assert.equal(got[0]!.payload.toString(), 'with-props');
    assert.deepEqual(Object.entries(got[0]!.properties?.userProperties ?? {}), [
      ['k', 'v'],
      ['colour', 'blue'],
    ]);
    const received = ok(await sub.done, 'mosquitto_sub');
    assert.equal(received.stdout.trim(), 'k:v colour:blue|with-props');
  });

  test('user properties from MQTT.js reach mosquitto_sub', async () => {
    const topic = 'mosq/v5/from-js';
    const sub = await subscriber('mqttv5', ['-t', topic, '-q', '2', '-C', '1', '-F', '%P|%q|%p']);
    const js = await mqtt.connectAsync(t.url, { protocolVersion: 5, clientId: id('js'), reconnectPeriod: 0 });
    clients.push(js);
    await js.publishAsync(topic, 'from-js', {
      qos: 2,
      properties: { userProperties: { origin: 'mqtt.js' } },
    });
    const received = ok(await sub.done, 'mosquitto_sub');
    assert.equal(received.stdout.trim(), 'origin:mqtt.js|2|from-js');
  });
});
