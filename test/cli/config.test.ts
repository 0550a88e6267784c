import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Broker } from '../../src/broker/broker.js';
import { ConfigError, loadConfigFile, parseConfig, validateConfig } from '../../src/config/load.js';
import {
  type CicadaConfig,
  CONFIG_SCHEMA,
  configReference,
  DEFAULT_CONFIG,
} from '../../src/config/schema.js';
import { DEFAULT_MQTT_OPTIONS } from '../../src/protocol/mqtt/options.js';
import { MemoryStore } from '../../src/store/memory/memory-store.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cicada-config-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileCount = 0;
/** Writes `text` to a fresh file and returns its path. */
async function configFile(text: string, extension = 'yaml'): Promise<string> {
  const path = join(dir, `c${++fileCount}.${extension}`);
  await writeFile(path, text);
  return path;
}

/** Loads `text` as a file and returns the ConfigError it must raise. */
async function loadError(text: string): Promise<{ path: string; error: ConfigError }> {
  const path = await configFile(text);
  try {
    await loadConfigFile(path);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.ok(!error.message.includes('\n'), `message must be one line: ${JSON.stringify(error.message)}`);
    return { path, error };
  }
  assert.fail(`config was accepted: ${JSON.stringify(text)}`);
}

const FULL_YAML = `# every setting, none at its default
listen: ["mqtt://127.0.0.1:1884", "tcp://[::1]:0"]
logLevel: debug
shutdownTimeout: 30
store:
  type: memory
  directory: /var/lib/cicada
broker:
  maxQueuedMessages: 10
  queueOverflow: drop-oldest
  queueQoS0: true
  maxSessionExpiryInterval: 3600
  maximumQoS: 1
  retainAvailable: false
  wildcardSubscriptionsAvailable: false
  sharedSubscriptionsAvailable: false
  subscriptionIdentifiersAvailable: false
  maxRetainedMessages: 5
mqtt:
  maxPacketSize: 268435460
  receiveMaximum: 65535
  maxInflightMessages: 7
  topicAliasMaximum: 0
  serverKeepAlive: 30
  connectTimeout: 500
  responseInformation: "r/%c"
  allowZeroLengthClientId: false
  maxPublishRate: 100
  maxPublishBytesRate: 65536
  maxSubscriptionsPerClient: 20
  maxTopicLength: 512
  maxTopicLevels: 16
  outboundSoftLimit: 131072
  outboundHardLimit: 4194304
listeners:
  - url: mqtts://0.0.0.0:8883
    tls:
      cert: /etc/cicada/server.pem
      key: /etc/cicada/server.key
      ca: /etc/cicada/ca.pem
      passphrase: hush
      requestCert: true
      requireCert: false
      usernameFrom: cn
    proxyProtocol: true
    allowAnonymous: false
    auth: [jwt, password-file]
    limits:
      maxConnections: 10
      connectionRatePerAddress: 2
tls:
  cert: /etc/cicada/default.pem
  key: /etc/cicada/default.key
  ca: ""
  passphrase: ""
  requestCert: false
  requireCert: true
  usernameFrom: san-email
auth:
  allowAnonymous: true
  passwordFile: /etc/cicada/passwd
  scram: false
  jwt:
    algorithm: ES256
    secretFile: ""
    publicKeyFile: ""
    jwksFile: /etc/cicada/jwks.json
    issuer: https://id.example.com
    audience: cicada
    clientIdClaim: client_id
    usernameClaim: preferred_username
    aclClaim: mqtt_acl
    leewaySeconds: 5
  http:
    url: http://127.0.0.1:9000/auth
    timeoutMs: 250
    failClosed: false
    cacheSeconds: 10
    denyCacheSeconds: 1
    bearerTokenFile: /etc/cicada/hook-token
  throttle:
    freeFailures: 3
    maxDelayMs: 2000
acl:
  file: /etc/cicada/acl
limits:
  maxConnections: 500
  maxConnectionsPerAddress: 0
  connectionRatePerAddress: 7
  connectionBurstPerAddress: 9
  memoryHighWaterMark: -1
  memoryLowWaterMark: 1000000
  memorySampleInterval: 250
http:
  adminToken: s3cret
  adminTokenFile: /etc/cicada/admin-token
  metricsAuth: true
  sseKeepAlive: 5
  sseReplayWindow: 120
sys:
  interval: 30
queues:
  maxMessages: 50
  maxRedeliveries: 2
  deadLetterPrefix: dead.
  defaultPrefetch: 10
  maxQueues: 20
stomp:
  maxFrameSize: 65536
  maxHeaders: 16
  maxHeaderLength: 1024
  connectTimeout: 2000
  heartbeatSend: 0
  heartbeatReceive: 30000
  maxSubscriptions: 5
  maxUnacknowledged: 8
  maxTransactionFrames: 20
  maxSendRate: 100
  maxSendBytesRate: 100000
  outboundSoftLimit: 1024
  outboundHardLimit: 4096
`;

const FULL_CONFIG: CicadaConfig = {
  listen: ['mqtt://127.0.0.1:1884', 'tcp://[::1]:0'],
  logLevel: 'debug',
  shutdownTimeout: 30,
  store: { type: 'memory', directory: '/var/lib/cicada' },
  broker: {
    maxQueuedMessages: 10,
    queueOverflow: 'drop-oldest',
    queueQoS0: true,
    maxSessionExpiryInterval: 3600,
    maximumQoS: 1,
    retainAvailable: false,
    wildcardSubscriptionsAvailable: false,
    sharedSubscriptionsAvailable: false,
    subscriptionIdentifiersAvailable: false,
    maxRetainedMessages: 5,
  },
  mqtt: {
    maxPacketSize: 268_435_460,
    receiveMaximum: 65_535,
    maxInflightMessages: 7,
    topicAliasMaximum: 0,
    serverKeepAlive: 30,
    connectTimeout: 500,
    responseInformation: 'r/%c',
    allowZeroLengthClientId: false,
    maxPublishRate: 100,
    maxPublishBytesRate: 65_536,
    maxSubscriptionsPerClient: 20,
    maxTopicLength: 512,
    maxTopicLevels: 16,
    outboundSoftLimit: 131_072,
    outboundHardLimit: 4_194_304,
  },
  listeners: [
    {
      url: 'mqtts://0.0.0.0:8883',
      tls: {
        cert: '/etc/cicada/server.pem',
        key: '/etc/cicada/server.key',
        ca: '/etc/cicada/ca.pem',
        passphrase: 'hush',
        requestCert: true,
        requireCert: false,
        usernameFrom: 'cn',
      },
      proxyProtocol: true,
      allowAnonymous: false,
      auth: ['jwt', 'password-file'],
      limits: { maxConnections: 10, connectionRatePerAddress: 2 },
    },
  ],
  tls: {
    cert: '/etc/cicada/default.pem',
    key: '/etc/cicada/default.key',
    ca: '',
    passphrase: '',
    requestCert: false,
    requireCert: true,
    usernameFrom: 'san-email',
  },
  auth: {
    allowAnonymous: true,
    passwordFile: '/etc/cicada/passwd',
    scram: false,
    jwt: {
      algorithm: 'ES256',
      secretFile: '',
      publicKeyFile: '',
      jwksFile: '/etc/cicada/jwks.json',
      issuer: 'https://id.example.com',
      audience: 'cicada',
      clientIdClaim: 'client_id',
      usernameClaim: 'preferred_username',
      aclClaim: 'mqtt_acl',
      leewaySeconds: 5,
    },
    http: {
      url: 'http://127.0.0.1:9000/auth',
      timeoutMs: 250,
      failClosed: false,
      cacheSeconds: 10,
      denyCacheSeconds: 1,
      bearerTokenFile: '/etc/cicada/hook-token',
    },
    throttle: { freeFailures: 3, maxDelayMs: 2000 },
  },
  acl: { file: '/etc/cicada/acl' },
  limits: {
    maxConnections: 500,
    maxConnectionsPerAddress: 0,
    connectionRatePerAddress: 7,
    connectionBurstPerAddress: 9,
    memoryHighWaterMark: -1,
    memoryLowWaterMark: 1_000_000,
    memorySampleInterval: 250,
  },
  http: {
    adminToken: 's3cret',
    adminTokenFile: '/etc/cicada/admin-token',
    metricsAuth: true,
    sseKeepAlive: 5,
    sseReplayWindow: 120,
  },
  sys: { interval: 30 },
  queues: {
    maxMessages: 50,
    maxRedeliveries: 2,
    deadLetterPrefix: 'dead.',
    defaultPrefetch: 10,
    maxQueues: 20,
  },
  stomp: {
    maxFrameSize: 65_536,
    maxHeaders: 16,
    maxHeaderLength: 1024,
    connectTimeout: 2000,
    heartbeatSend: 0,
    heartbeatReceive: 30_000,
    maxSubscriptions: 5,
    maxUnacknowledged: 8,
    maxTransactionFrames: 20,
    maxSendRate: 100,
    maxSendBytesRate: 100_000,
    outboundSoftLimit: 1024,
    outboundHardLimit: 4096,
  },
};

describe('config: valid files', () => {
  test('a file giving every setting is read as written', async () => {
    assert.deepEqual(await loadConfigFile(await configFile(FULL_YAML)), FULL_CONFIG);
  });

  test('JSON is accepted (tab-indented, as editors write it)', async () => {
    const json = JSON.stringify(FULL_CONFIG, null, '\t');
    assert.deepEqual(await loadConfigFile(await configFile(json, 'json')), FULL_CONFIG);
  });

  test('an empty file (or only comments) is all defaults', async () => {
    assert.deepEqual(await loadConfigFile(await configFile('')), DEFAULT_CONFIG);
    assert.deepEqual(await loadConfigFile(await configFile('# nothing yet\n')), DEFAULT_CONFIG);
  });

  test('settings left out take their defaults, an empty section included', async () => {
    const config = await loadConfigFile(await configFile('broker:\nmqtt:\n  receiveMaximum: 5\n'));
    assert.deepEqual(config, { ...DEFAULT_CONFIG, mqtt: { ...DEFAULT_CONFIG.mqtt, receiveMaximum: 5 } });
    assert.equal('serverKeepAlive' in config.mqtt, false, 'an optional setting without default stays unset');
  });

  test('listeners given without listen replace the default listener', () => {
    const config = validateConfig({ listeners: [{ url: 'ws://127.0.0.1:8080/mqtt' }] }, 'inline');
    assert.deepEqual(config.listen, []);
    assert.equal(config.listeners[0]?.url, 'ws://127.0.0.1:8080/mqtt');
    assert.equal(config.listeners[0]?.proxyProtocol, false);
    assert.equal(config.listeners[0]?.tls.requireCert, true);
    assert.equal(
      'allowAnonymous' in (config.listeners[0] ?? {}),
      false,
      'unset: auth.allowAnonymous decides',
    );
  });

  test('a single listen URL is a list of one', () => {
    assert.deepEqual(validateConfig({ listen: 'mqtt://localhost:1883' }, 'inline').listen, [
      'mqtt://localhost:1883',
    ]);
  });

  test('the result is fresh: changing it does not change the defaults', () => {
    const config = validateConfig({}, 'inline');
    config.listen.push('mqtt://127.0.0.1:1');
    config.mqtt.receiveMaximum = 1;
    assert.deepEqual(DEFAULT_CONFIG.listen, ['mqtt://0.0.0.0:1883']);
    assert.equal(DEFAULT_CONFIG.mqtt.receiveMaximum, 1024);
    assert.ok(Object.isFrozen(DEFAULT_CONFIG.mqtt));
  });
});

describe('config: defaults and reference', () => {
  test("defaults are the broker core's and the MQTT protocol's own", async () => {
    const broker = new Broker({ store: new MemoryStore() });
    for (const key of Object.keys(CONFIG_SCHEMA.broker.fields) as (keyof CicadaConfig['broker'])[]) {
      assert.equal(DEFAULT_CONFIG.broker[key], broker.options[key], `broker.${key}`);
    }
    assert.deepEqual(DEFAULT_CONFIG.mqtt, DEFAULT_MQTT_OPTIONS);
    assert.deepEqual(DEFAULT_CONFIG.listen, ['mqtt://0.0.0.0:1883']);
    assert.equal(DEFAULT_CONFIG.logLevel, 'info');
  });

  test('the reference lists every setting the core and the protocol have, with a one-line description', () => {
    const rows = configReference();
    const coreKeys = Object.keys(new Broker({ store: new MemoryStore() }).options).filter(
      (key) => !['store', 'hooks', 'onError', 'now'].includes(key),
    );
    const mqttKeys = [...Object.keys(DEFAULT_MQTT_OPTIONS), 'serverKeepAlive'];
    const expected = [
      'listen',
      'logLevel',
      'shutdownTimeout',
      'store',
      'store.type',
      'store.directory',
      'broker',
      'mqtt',
      ...coreKeys.map((key) => `broker.${key}`),
      ...mqttKeys.map((key) => `mqtt.${key}`),
      'sys',
      'sys.interval',
    ];
    // Listeners, TLS, auth and ACL settings are the config's own; their table is checked above.
    const own = /^(listeners|tls|auth|acl|limits|http|queues|stomp)\b/;
    assert.deepEqual(
      rows
        .map((row) => row.key)
        .filter((key) => !own.test(key))
        .sort(),
      expected.sort(),
    );
    for (const row of rows) {
      assert.match(row.description, /^[^\n]{5,}$/, row.key);
      assert.ok(row.expected.length > 0, row.key);
    }
    const row = rows.find((r) => r.key === 'mqtt.receiveMaximum');
    assert.deepEqual(row?.expected, 'an integer from 1 to 65535');
    assert.deepEqual(row?.default, 1024);
  });
});

describe('config: one-line errors', () => {
  const cases: [name: string, text: string, detail: string, key: string | undefined][] = [
    [
      'value out of range',
      'mqtt:\n  receiveMaximum: 0\n',
      'mqtt.receiveMaximum is 0, expected an integer from 1 to 65535',
      'mqtt.receiveMaximum',
    ],
    [
      'wrong type',
      'mqtt:\n  maxPacketSize: 1MB\n',
      'mqtt.maxPacketSize is "1MB", expected an integer from 1 to 268435460',
      'mqtt.maxPacketSize',
    ],
    [
      'not an integer',
      'mqtt:\n  connectTimeout: 1.5\n',
      'mqtt.connectTimeout is 1.5, expected an integer from 1 to 2147483647',
      'mqtt.connectTimeout',
    ],
    [
      'above the maximum',
      'mqtt: { topicAliasMaximum: 65536 }\n',
      'mqtt.topicAliasMaximum is 65536, expected an integer from 0 to 65535',
      'mqtt.topicAliasMaximum',
    ],
    [
      'not one of an enum',
      'logLevel: verbose\n',
      'logLevel is "verbose", expected one of error, warn, info, debug',
      'logLevel',
    ],
    [
      'a number enum given a string',
      'broker:\n  maximumQoS: "2"\n',
      'broker.maximumQoS is "2", expected one of 0, 1, 2',
      'broker.maximumQoS',
    ],
    [
      'a boolean given a word',
      'broker:\n  retainAvailable: yes\n',
      'broker.retainAvailable is "yes", expected true or false',
      'broker.retainAvailable',
    ],
    [
      'a string given a number',
      'mqtt:\n  responseInformation: 5\n',
      'mqtt.responseInformation is 5, expected a string',
      'mqtt.responseInformation',
    ],
    ['a section given a scalar', 'mqtt: 5\n', 'mqtt is 5, expected a mapping of settings', 'mqtt'],
    [
      'the document is not a mapping',
      '- 1\n- 2\n',
      'the top level is [1,2], expected a mapping of settings',
      undefined,
    ],
    [
      'unknown key, misspelt',
      'mqtt:\n  recieveMaximum: 5\n',
      "unknown key 'mqtt.recieveMaximum' (did you mean 'mqtt.receiveMaximum'?)",
      'mqtt.recieveMaximum',
    ],
    [
      'unknown key, in the wrong section',
      'receiveMaximum: 5\n',
      "unknown key 'receiveMaximum' (did you mean 'mqtt.receiveMaximum'?)",
      'receiveMaximum',
    ],
    [
      'unknown key, wrong case',
      'loglevel: info\n',
      "unknown key 'loglevel' (did you mean 'logLevel'?)",
      'loglevel',
    ],
    [
      'unknown key, nothing like it',
      'broker:\n  colour: blue\n',
      "unknown key 'broker.colour' (known keys: maxQueuedMessages, queueOverflow, queueQoS0, maxSessionExpiryInterval, maximumQoS, retainAvailable, wildcardSubscriptionsAvailable, sharedSubscriptionsAvailable, subscriptionIdentifiersAvailable, maxRetainedMessages)",
      'broker.colour',
    ],
    ['an empty listen list', 'listen: []\n', 'listen is [], expected at least one listener URL', 'listen'],
    [
      'a listen URL of another scheme',
      'listen: ["mqtt://0.0.0.0:1883", "ftp://0.0.0.0:21"]\n',
      'listen[1] is "ftp://0.0.0.0:21", expected a URL with scheme mqtt, tcp, mqtts, ssl, tls, ws, wss, stomp, stomps, http or https, such as mqtt://0.0.0.0:1883',
      'listen[1]',
    ],
    [
      'a listen entry that is no string',
      'listen: [1883]\n',
      'listen[0] is 1883, expected a URL string such as mqtt://0.0.0.0:1883',
      'listen[0]',
    ],
    [
      'listen given a mapping',
      'listen: {url: x}\n',
      'listen is {"url":"x"}, expected a list of listener URLs such as mqtt://0.0.0.0:1883',
      'listen',
    ],
    [
      'the first error in document order is the one reported',
      'mqtt:\n  receiveMaximum: 0\nlogLevel: verbose\n',
      'mqtt.receiveMaximum is 0, expected an integer from 1 to 65535',
      'mqtt.receiveMaximum',
    ],
    [
      'a listener without a URL',
      'listeners:\n  - proxyProtocol: true\n',
      'listeners[0].url is missing, expected a listener URL such as mqtts://0.0.0.0:8883',
      'listeners[0].url',
    ],
    [
      'a listener URL of another scheme',
      'listeners:\n  - url: ftp://0.0.0.0:21\n',
      'listeners[0].url is "ftp://0.0.0.0:21", expected a URL with scheme mqtt, tcp, mqtts, ssl, tls, ws, wss, stomp, stomps, http or https, such as mqtt://0.0.0.0:1883',
      'listeners[0].url',
    ],
    [
      'an unknown credential check on a listener',
      'listeners:\n  - url: mqtt://0.0.0.0:1\n    auth: [ldap]\n',
      'listeners[0].auth[0] is "ldap", expected one of password-file, jwt, http',
      'listeners[0].auth[0]',
    ],
    [
      'listeners given a mapping',
      'listeners:\n  url: mqtt://0.0.0.0:1\n',
      'listeners is {"url":"mqtt://0.0.0.0:1"}, expected a list of mappings',
      'listeners',
    ],
    [
      'a misspelt key inside a listener',
      'listeners:\n  - url: mqtt://0.0.0.0:1\n    tsl: {}\n',
      "unknown key 'listeners[0].tsl' (did you mean 'listeners[].tls'?)",
      'listeners[0].tsl',
    ],
    [
      'listeners given and listen emptied',
      'listen: []\n',
      'listen is [], expected at least one listener URL',
      'listen',
    ],
  ];
  for (const [name, text, detail, key] of cases) {
    test(name, async () => {
      const { path, error } = await loadError(text);
      assert.equal(error.message, `config ${path}: ${detail}`);
      assert.equal(error.code, 'CONFIG_INVALID');
      assert.equal(error.source, path);
      assert.equal(error.key, key);
    });
  }

  test('a long value is shortened', () => {
    assert.throws(
      () => validateConfig({ mqtt: { receiveMaximum: 'x'.repeat(100) } }, './c.yaml'),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message ===
          `config ./c.yaml: mqtt.receiveMaximum is "${'x'.repeat(56)}..., expected an integer from 1 to 65535`,
    );
  });

  test('validateConfig names the source it is given', () => {
    assert.throws(() => validateConfig({ broker: { queueOverflow: 'drop' } }, 'env'), {
      name: 'ConfigError',
      code: 'CONFIG_INVALID',
      message: 'config env: broker.queueOverflow is "drop", expected one of drop-new, drop-oldest',
    });
  });
});

describe('config: unusable files', () => {
  const syntax: [name: string, text: string, detail: string, line: number, column: number][] = [
    [
      'an unclosed flow sequence',
      'mqtt:\n  receiveMaximum: [1, 2\nlogLevel: info\n',
      'YAML syntax error at line 3, column 1: Flow sequence in block collection must be sufficiently indented and end with a ]',
      3,
      1,
    ],
    [
      'a duplicated key',
      'mqtt:\n  receiveMaximum: 5\n  receiveMaximum: 6\n',
      'YAML syntax error at line 3, column 3: Map keys must be unique',
      3,
      3,
    ],
    [
      'an unclosed quote',
      'logLevel: "info\n',
      'YAML syntax error at line 2, column 1: Missing closing "quote',
      2,
      1,
    ],
    [
      'two documents',
      'logLevel: info\n---\nlogLevel: warn\n',
      'YAML syntax error at line 2, column 1: more than one document (a config file holds one)',
      2,
      1,
    ],
  ];
  for (const [name, text, detail, line, column] of syntax) {
    test(`YAML syntax error: ${name}`, async () => {
      const { path, error } = await loadError(text);
      assert.equal(error.message, `config ${path}: ${detail}`);
      assert.equal(error.code, 'CONFIG_SYNTAX');
      assert.equal(error.line, line);
      assert.equal(error.column, column);
    });
  }

  test('broken JSON is a syntax error too', () => {
    assert.throws(() => parseConfig('{"mqtt": {"receiveMaximum": 5}', 'c.json'), {
      code: 'CONFIG_SYNTAX',
      message: /^config c\.json: YAML syntax error at line 1, column \d+: [^\n]+$/,
    });
  });

  test('a missing file', async () => {
    const path = join(dir, 'missing.yaml');
    await assert.rejects(loadConfigFile(path), {
      name: 'ConfigError',
      code: 'CONFIG_UNREADABLE',
      message: `config ${path}: cannot read the file: no such file or directory`,
    });
  });

  test('a directory', async () => {
    await assert.rejects(loadConfigFile(dir), {
      code: 'CONFIG_UNREADABLE',
      message: `config ${dir}: cannot read the file: illegal operation on a directory`,
    });
  });
});
