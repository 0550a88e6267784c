import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { AccessControl } from '../../src/auth/access-control.js';
import { Acl } from '../../src/auth/acl.js';
import type { AuthProvider } from '../../src/auth/types.js';
import { until } from '../helpers/broker.js';
import { perTest } from '../helpers/mqtt-client.js';
import { subackCodes } from '../helpers/mqtt-codes.js';

/**
 * `$SYS/broker/...` end to end with MQTT.js: the topics arrive (retained, refreshed every
 * interval), `#` does not match them (MQTT-4.7.2-1), and the ACL decides who may read them.
 */

const { broker, mqttClient } = perTest();

/** Topic → latest payload text an MQTT.js client received. */
function latest(c: MqttClient): Map<string, string> {
  const got = new Map<string, string>();
  c.on('message', (topic, payload) => got.set(topic, payload.toString()));
  return got;
}

async function connected(c: MqttClient): Promise<MqttClient> {
  if (!c.connected)
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('error', reject);
    });
  return c;
}

describe('$SYS topics', () => {
  test('a $SYS/broker/# subscriber gets Mosquitto-named topics, refreshed every interval', async () => {
    const b = await broker({ sys: { interval: 1 } });
    const pub = await connected(mqttClient(b.url, { clientId: 'sys-pub', protocolVersion: 5 }));
    await pub.publishAsync('load/a', 'x', { qos: 1 });
    await pub.publishAsync('load/b', 'y', { qos: 0 });
    const sys = await connected(mqttClient(b.url, { clientId: 'sys-reader', protocolVersion: 5 }));
    const got = latest(sys);
    const retainedFlags = new Map<string, boolean>();
    sys.on('message', (topic, _payload, packet) => retainedFlags.set(topic, packet.retain));
    await sys.subscribeAsync('$SYS/broker/#', { qos: 0 });
    const names = [
      'version',
      'uptime',
      'clients/connected',
      'clients/total',
      'clients/disconnected',
      'messages/received',
      'messages/sent',
      'messages/stored',
      'retained messages/count',
      'subscriptions/count',
      'bytes/received',
      'bytes/sent',
      'heap/current',
      ...['messages/received', 'messages/sent', 'bytes/received', 'bytes/sent'].flatMap((kind) =>
        ['1min', '5min', '15min'].map((window) => `load/${kind}/${window}`),
      ),
    ];
    await until(() => names.every((n) => got.has(`$SYS/broker/${n}`)), 'every $SYS topic');
    // The ones present on subscribing came as retained messages.
    assert.equal(retainedFlags.get('$SYS/broker/version'), true);
    assert.match(got.get('$SYS/broker/version') ?? '', /^cicada version \S+$/);
    assert.match(got.get('$SYS/broker/uptime') ?? '', /^\d+ seconds$/);
    assert.match(got.get('$SYS/broker/heap/current') ?? '', /^\d+$/);
    assert.match(got.get('$SYS/broker/load/messages/received/1min') ?? '', /^\d+\.\d\d$/);
    // Refreshed: the reader's own connection and subscription show up at the next update.
    await until(() => got.get('$SYS/broker/clients/connected') === '2', 'clients/connected = 2');
    await until(() => got.get('$SYS/broker/subscriptions/count') === '1', 'subscriptions/count = 1');
    await until(() => got.get('$SYS/broker/messages/received') === '2', 'messages/received = 2');
    await until(() => got.get('$SYS/broker/clients/total') === '2', 'clients/total = 2');
    await until(() => got.get('$SYS/broker/clients/disconnected') === '0', 'clients/disconnected = 0');
    // The $SYS messages themselves are not counted as received by the broker.
    assert.equal(b.broker.metrics?.messagesReceived, 2);
  });

  test('a # subscriber gets no $SYS topic (MQTT-4.7.2-1), only its own traffic', async () => {
    const b = await broker({ sys: { interval: 1 } });
    const all = await connected(mqttClient(b.url, { clientId: 'hash-reader', protocolVersion: 5 }));
    const sys = await connected(mqttClient(b.url, { clientId: 'sys-reader2', protocolVersion: 4 }));
    const allGot = latest(all);
    const sysGot = latest(sys);
    await all.subscribeAsync('#', { qos: 0 });
    await all.subscribeAsync('+/broker/#', { qos: 0 });
    await sys.subscribeAsync('$SYS/#', { qos: 0 });
    // Two updates reached the $SYS subscriber (uptime changes every second)...
    await until(() => sysGot.has('$SYS/broker/uptime'), 'a first $SYS update');
    const first = sysGot.get('$SYS/broker/uptime');
    await until(() => sysGot.get('$SYS/broker/uptime') !== first, 'a second $SYS update');
    await sys.publishAsync('plain/topic', 'hello', { qos: 1 });
    await until(() => allGot.has('plain/topic'), 'the plain message');
    // ...while the wildcard subscriber got only the plain message.
    assert.deepEqual([...allGot.keys()], ['plain/topic']);
  });

  test('an ACL denying $SYS/# refuses the subscription; another user may read it', async () => {
    const users: AuthProvider = {
      name: 'users',
      async check({ username }) {
        return username === 'ops' || username === 'app'
          ? { decision: 'allow', identity: { provider: 'users', username } }
          : { decision: 'abstain' };
      },
    };
    const acl = Acl.fromText(
      ['user ops', 'topic read $SYS/#', '', 'user app', 'topic readwrite app/#', 'topic deny $SYS/#'].join(
        '\n',
      ),
      'sys.acl',
    );
    const access = new AccessControl({ providers: [users], authorizer: acl });
    const b = await broker({ sys: { interval: 1 }, hooks: access.hooks() });
    const app = await connected(
      mqttClient(b.url, { clientId: 'app-1', username: 'app', protocolVersion: 5 }),
    );
    const appGot = latest(app);
    // MQTT 5: 0x87 Not authorized for the $SYS filters; the app's own filter is granted.
    assert.deepEqual(await subackCodes(app, ['$SYS/#', '$SYS/broker/uptime', 'app/#'], 0), [0x87, 0x87, 0]);
    const ops = await connected(
      mqttClient(b.url, { clientId: 'ops-1', username: 'ops', protocolVersion: 4 }),
    );
    const opsGot = latest(ops);
    assert.deepEqual(await subackCodes(ops, ['$SYS/broker/#'], 0), [0]);
    await until(() => opsGot.has('$SYS/broker/clients/connected'), 'ops reads $SYS');
    await app.publishAsync('app/done', 'ok', { qos: 1 });
    await until(() => appGot.has('app/done'), 'the app gets its own message');
    assert.ok(![...appGot.keys()].some((topic) => topic.startsWith('$SYS')), 'app got no $SYS message');
  });

  test('interval 0 (the library default) publishes nothing', async () => {
    const b = await broker({ sys: { interval: 0 } });
    assert.equal(b.broker.broker.retainedCount, 0);
    const c = await connected(mqttClient(b.url, { clientId: 'no-sys', protocolVersion: 5 }));
    const got = latest(c);
    await c.subscribeAsync(['$SYS/#', 'marker/#'], { qos: 0 });
    await c.publishAsync('marker/x', 'after the subscription', { qos: 1 });
    await until(() => got.has('marker/x'), 'the marker');
    assert.deepEqual([...got.keys()], ['marker/x']);
    assert.equal(b.broker.broker.retainedCount, 0);
  });
});
