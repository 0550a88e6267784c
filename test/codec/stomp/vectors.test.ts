import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_STOMP_LIMITS,
  StompDecoder as Decoder,
  decodeFrames,
  encodeFrame,
  getHeader,
  headerEncodingFault,
  STOMP_CLIENT_COMMANDS,
  STOMP_SERVER_COMMANDS,
  StompCodecError,
  type StompDecoder,
  type StompErrorCode,
  type StompFrame,
  type StompLimits,
  type StompVersion,
} from '../../../src/codec/stomp/index.js';
import { decodeChunked, everyByte, wire } from './helpers.js';

/** A valid frame: its bytes and the frame they mean, checked both ways. */
interface Vector {
  name: string;
  version: StompVersion;
  wire: Buffer;
  frame: StompFrame;
  /** Valid bytes the encoder does not produce (CRLF, raw ':' in a value, ...). */
  decodeOnly?: boolean;
}

const text = (s: string): Buffer => Buffer.from(s, 'utf8');
const noFrame = (): void => assert.fail('no frame expected');
const none = Buffer.alloc(0);

const vectors: Vector[] = [
  // One per command (STOMP 1.2 "Client Frames", "Server Frames", "Connecting").
  {
    name: '1.0 CONNECT with login and passcode',
    version: '1.0',
    wire: wire('CONNECT', 'login:guest', 'passcode:s3cret', '', '\0'),
    frame: {
      command: 'CONNECT',
      headers: [
        ['login', 'guest'],
        ['passcode', 's3cret'],
      ],
      body: none,
    },
  },
  {
    name: '1.2 STOMP frame negotiating versions and heart-beats',
    version: '1.0',
    wire: wire(
      'STOMP',
      'accept-version:1.0,1.1,1.2',
      'host:broker.example',
      'heart-beat:10000,10000',
      '',
      '\0',
    ),
    frame: {
      command: 'STOMP',
      headers: [
        ['accept-version', '1.0,1.1,1.2'],
        ['host', 'broker.example'],
        ['heart-beat', '10000,10000'],
      ],
      body: none,
    },
  },
  {
    name: 'CONNECTED',
    version: '1.2',
    wire: wire(
      'CONNECTED',
      'version:1.2',
      'heart-beat:0,5000',
      'session:s-1',
      'server:cicada/0.1.0',
      '',
      '\0',
    ),
    frame: {
      command: 'CONNECTED',
      headers: [
        ['version', '1.2'],
        ['heart-beat', '0,5000'],
        ['session', 's-1'],
        ['server', 'cicada/0.1.0'],
      ],
      body: none,
    },
  },
  {
    name: 'SEND with a text body, no content-length: the body runs to the first NUL',
    version: '1.2',
    wire: wire('SEND', 'destination:/topic/a.b', 'content-type:text/plain', '', 'hello world\0'),
    frame: {
      command: 'SEND',
      headers: [
        ['destination', '/topic/a.b'],
        ['content-type', 'text/plain'],
      ],
      body: text('hello world'),
    },
  },
  {
    name: 'SEND with content-length: the body holds NUL bytes and a trailing LF',
    version: '1.2',
    wire: wire('SEND', 'destination:/queue/q', 'content-length:7', '', 'a\0b\0c\n\0\0'),
    frame: {
      command: 'SEND',
      headers: [
        ['destination', '/queue/q'],
        ['content-length', '7'],
      ],
      body: text('a\0b\0c\n\0'),
    },
  },
  {
    name: 'SEND with content-length 0',
    version: '1.1',
    wire: wire('SEND', 'destination:/queue/q', 'content-length:0', '', '\0'),
    frame: {
      command: 'SEND',
      headers: [
        ['destination', '/queue/q'],
        ['content-length', '0'],
      ],
      body: none,
    },
  },
  {
    name: 'SUBSCRIBE',
    version: '1.2',
    wire: wire('SUBSCRIBE', 'id:0', 'destination:/queue/orders', 'ack:client-individual', '', '\0'),
    frame: {
      command: 'SUBSCRIBE',
      headers: [
        ['id', '0'],
        ['destination', '/queue/orders'],
        ['ack', 'client-individual'],
      ],
      body: none,
    },
  },
  {
    name: 'UNSUBSCRIBE',
    version: '1.2',
    wire: wire('UNSUBSCRIBE', 'id:0', '', '\0'),
    frame: { command: 'UNSUBSCRIBE', headers: [['id', '0']], body: none },
  },
  {
    name: 'ACK in a transaction',
    version: '1.2',
    wire: wire('ACK', 'id:m-12', 'transaction:tx1', '', '\0'),
    frame: {
      command: 'ACK',
      headers: [
        ['id', 'm-12'],
        ['transaction', 'tx1'],
      ],
      body: none,
    },
  },
  {
    name: 'NACK (1.1 names the message by message-id and subscription)',
    version: '1.1',
    wire: wire('NACK', 'message-id:m-1', 'subscription:0', '', '\0'),
    frame: {
      command: 'NACK',
      headers: [
        ['message-id', 'm-1'],
        ['subscription', '0'],
      ],
      body: none,
    },
  },
  {
    name: 'BEGIN',
    version: '1.2',
    wire: wire('BEGIN', 'transaction:tx1', '', '\0'),
    frame: { command: 'BEGIN', headers: [['transaction', 'tx1']], body: none },
  },
  {
    name: 'COMMIT',
    version: '1.2',
    wire: wire('COMMIT', 'transaction:tx1', '', '\0'),
    frame: { command: 'COMMIT', headers: [['transaction', 'tx1']], body: none },
  },
  {
    name: 'ABORT',
    version: '1.2',
    wire: wire('ABORT', 'transaction:tx1', '', '\0'),
    frame: { command: 'ABORT', headers: [['transaction', 'tx1']], body: none },
  },
  {
    name: 'DISCONNECT asking for a receipt',
    version: '1.2',
    wire: wire('DISCONNECT', 'receipt:77', '', '\0'),
    frame: { command: 'DISCONNECT', headers: [['receipt', '77']], body: none },
  },
  {
    name: 'a frame with no headers at all',
    version: '1.2',
    wire: wire('DISCONNECT', '', '\0'),
    frame: { command: 'DISCONNECT', headers: [], body: none },
  },
  {
    name: 'MESSAGE with a binary body',
    version: '1.2',
    wire: Buffer.concat([
      wire(
        'MESSAGE',
        'subscription:0',
        'message-id:007',
        'destination:/queue/q',
        'ack:a1',
        'content-length:3',
        '',
      ),
      Buffer.from([0x0a, 0xff, 0x00, 0x00, 0x00]),
    ]),
    frame: {
      command: 'MESSAGE',
      headers: [
        ['subscription', '0'],
        ['message-id', '007'],
        ['destination', '/queue/q'],
        ['ack', 'a1'],
        ['content-length', '3'],
      ],
      body: Buffer.from([0xff, 0x00, 0x00]),
    },
  },
  {
    name: 'RECEIPT',
    version: '1.2',
    wire: wire('RECEIPT', 'receipt-id:77', '', '\0'),
    frame: { command: 'RECEIPT', headers: [['receipt-id', '77']], body: none },
  },
  {
    name: 'ERROR with a message header and a text body',
    version: '1.2',
    wire: wire(
      'ERROR',
      'message:malformed frame',
      'receipt-id:9',
      'content-type:text/plain',
      '',
      'details\0',
    ),
    frame: {
      command: 'ERROR',
      headers: [
        ['message', 'malformed frame'],
        ['receipt-id', '9'],
        ['content-type', 'text/plain'],
      ],
      body: text('details'),
    },
  },

  // Header escaping (STOMP 1.2 "Value Encoding").
  {
    name: '1.2 unescapes \\r \\n \\c \\\\ in names and values',
    version: '1.2',
    wire: wire('SEND', 'destination:/queue/q', 'a\\cb:line1\\nline2\\r\\\\end', '', '\0'),
    frame: {
      command: 'SEND',
      headers: [
        ['destination', '/queue/q'],
        ['a:b', 'line1\nline2\r\\end'],
      ],
      body: none,
    },
  },
  {
    name: '1.1 unescapes the same, \\r included (leniency: 1.1 defines only \\n \\c \\\\)',
    version: '1.1',
    wire: wire('MESSAGE', 'k\\\\:a\\cb\\r\\n', '', '\0'),
    frame: { command: 'MESSAGE', headers: [['k\\', 'a:b\r\n']], body: none },
    // The encoder writes no \r escape for 1.1 (encodeFrame tests): its receivers may reject one.
    decodeOnly: true,
  },
  {
    name: '1.0 takes header text verbatim: backslashes are not escapes',
    version: '1.0',
    wire: wire('SEND', 'path:C:\\new\\table', '', '\0'),
    frame: { command: 'SEND', headers: [['path', 'C:\\new\\table']], body: none },
  },
  {
    name: '1.2 CONNECT is not unescaped (STOMP 1.2 "Value Encoding": 1.0 peers read it)',
    version: '1.2',
    wire: wire('CONNECT', 'accept-version:1.2', 'passcode:a\\cb\\x', '', '\0'),
    frame: {
      command: 'CONNECT',
      headers: [
        ['accept-version', '1.2'],
        ['passcode', 'a\\cb\\x'],
      ],
      body: none,
    },
  },
  {
    name: '1.2 CONNECTED is not unescaped either',
    version: '1.2',
    wire: wire('CONNECTED', 'version:1.2', 'server:x\\y', '', '\0'),
    frame: {
      command: 'CONNECTED',
      headers: [
        ['version', '1.2'],
        ['server', 'x\\y'],
      ],
      body: none,
    },
  },
  {
    name: 'padding is part of the name and value, in every version',
    version: '1.2',
    wire: wire('SEND', ' destination : /queue/q ', '', '\0'),
    frame: { command: 'SEND', headers: [[' destination ', ' /queue/q ']], body: none },
  },
  {
    name: '1.0 padding is kept too',
    version: '1.0',
    wire: wire('SEND', 'destination: /queue/q', '', '\0'),
    frame: { command: 'SEND', headers: [['destination', ' /queue/q']], body: none },
  },
  {
    name: 'an empty value',
    version: '1.2',
    wire: wire('SEND', 'x:', '', '\0'),
    frame: { command: 'SEND', headers: [['x', '']], body: none },
  },
  {
    name: 'UTF-8 names and values',
    version: '1.2',
    wire: wire('SEND', 'destination:/topic/café.☕', 'clé:日本', '', '\0'),
    frame: {
      command: 'SEND',
      headers: [
        ['destination', '/topic/café.☕'],
        ['clé', '日本'],
      ],
      body: none,
    },
  },
  {
    name: 'repeated headers are all kept, in order (getHeader takes the first)',
    version: '1.2',
    wire: wire('MESSAGE', 'foo:World', 'foo:Hello', '', '\0'),
    frame: {
      command: 'MESSAGE',
      headers: [
        ['foo', 'World'],
        ['foo', 'Hello'],
      ],
      body: none,
    },
  },

  // Decode-only leniency.
  {
    name: 'CRLF line ends (STOMP 1.2 "Augmented BNF")',
    version: '1.2',
    wire: text('SEND\r\ndestination:/queue/q\r\ncontent-length:2\r\n\r\nhi\0'),
    frame: {
      command: 'SEND',
      headers: [
        ['destination', '/queue/q'],
        ['content-length', '2'],
      ],
      body: text('hi'),
    },
    decodeOnly: true,
  },
  {
    name: 'CRLF is accepted in 1.0 as well',
    version: '1.0',
    wire: text('SEND\r\ndestination:/queue/q\r\n\r\nhi\0'),
    frame: { command: 'SEND', headers: [['destination', '/queue/q']], body: text('hi') },
    decodeOnly: true,
  },
  {
    name: 'mixed LF and CRLF',
    version: '1.1',
    wire: text('SEND\ndestination:/queue/q\r\n\nhi\0'),
    frame: { command: 'SEND', headers: [['destination', '/queue/q']], body: text('hi') },
    decodeOnly: true,
  },
  {
    name: 'an unescaped ":" in a 1.2 value is taken as text (the name ends at the first one)',
    version: '1.2',
    wire: wire('SEND', 'reply-to:amqp://host:5672/x', '', '\0'),
    frame: { command: 'SEND', headers: [['reply-to', 'amqp://host:5672/x']], body: none },
    decodeOnly: true,
  },
  {
    name: 'a CR inside a value (not before the LF) is kept',
    version: '1.0',
    wire: wire('SEND', 'x:a\rb', '', '\0'),
    frame: { command: 'SEND', headers: [['x', 'a\rb']], body: none },
    decodeOnly: true,
  },
  {
    name: 'a repeated content-length: only the first counts',
    version: '1.2',
    wire: wire('SEND', 'content-length:1', 'content-length:x', '', 'A\0'),
    frame: {
      command: 'SEND',
      headers: [
        ['content-length', '1'],
        ['content-length', 'x'],
      ],
      body: text('A'),
    },
    decodeOnly: true,
  },
  {
    name: 'a content-length with leading zeros',
    version: '1.2',
    wire: wire('SEND', 'content-length:002', '', 'AB\0'),
    frame: { command: 'SEND', headers: [['content-length', '002']], body: text('AB') },
  },
];

describe('valid frames: annotated vectors', () => {
  for (const v of vectors) {
    test(`${v.name}: decodes`, () => {
      assert.deepEqual(decodeFrames(v.wire, v.version), [v.frame]);
    });
    test(`${v.name}: decodes the same from a one-byte drip`, () => {
      const outcome = decodeChunked(v.wire, { version: v.version, cuts: everyByte(v.wire) });
      assert.equal(outcome.error, undefined);
      assert.deepEqual(outcome.frames, [v.frame]);
    });
    if (!v.decodeOnly)
      test(`${v.name}: encodes to the same bytes`, () => {
        const bytes = encodeFrame(v.frame.command, v.frame.headers, v.frame.body, v.version);
        assert.equal(bytes.toString('latin1'), v.wire.toString('latin1'));
      });
  }

  test('getHeader returns the first occurrence, or undefined', () => {
    const [frame] = decodeFrames(wire('MESSAGE', 'foo:World', 'foo:Hello', '', '\0'));
    assert.equal(getHeader(frame!, 'foo'), 'World');
    assert.equal(getHeader(frame!, 'bar'), undefined);
  });

  test('the command sets are those of STOMP 1.2, client and server apart', () => {
    assert.deepEqual([...STOMP_CLIENT_COMMANDS].sort(), [
      'ABORT',
      'ACK',
      'BEGIN',
      'COMMIT',
      'CONNECT',
      'DISCONNECT',
      'NACK',
      'SEND',
      'STOMP',
      'SUBSCRIBE',
      'UNSUBSCRIBE',
    ]);
    assert.deepEqual([...STOMP_SERVER_COMMANDS].sort(), ['CONNECTED', 'ERROR', 'MESSAGE', 'RECEIPT']);
  });

  test('the default limits are 1 MiB per frame, 64 headers and 8 KiB per header line', () => {
    assert.deepEqual(DEFAULT_STOMP_LIMITS, { maxFrameSize: 1 << 20, maxHeaders: 64, maxHeaderLength: 8192 });
    assert.deepEqual(new Decoder().limits, DEFAULT_STOMP_LIMITS);
    assert.deepEqual(new Decoder({ maxHeaders: 3 }).limits, { ...DEFAULT_STOMP_LIMITS, maxHeaders: 3 });
  });
});

describe('heart-beats (STOMP 1.2 "Heart-beating")', () => {
  const send = wire('SEND', 'destination:/q', '', 'x\0');

  test('EOLs before, between and after frames are heart-beats, one per LF or CRLF', () => {
    const stream = Buffer.concat([text('\n\r\n'), send, text('\n\n'), send, text('\r\n'), send]);
    for (const cuts of [[], everyByte(stream)]) {
      const outcome = decodeChunked(stream, { cuts });
      assert.equal(outcome.error, undefined);
      assert.equal(outcome.frames.length, 3);
      assert.equal(outcome.heartbeats, 5);
      assert.equal(outcome.midFrame, false);
    }
  });

  test('a CR split from its LF across chunks is one heart-beat', () => {
    const decoder = new Decoder();
    let beats = 0;
    decoder.push(text('\r'), noFrame, () => beats++);
    assert.equal(beats, 0);
    decoder.push(text('\n'), noFrame, () => beats++);
    assert.equal(beats, 1);
  });

  test('heart-beats need no callback', () => {
    const decoder = new Decoder();
    const frames: StompFrame[] = [];
    decoder.push(Buffer.concat([text('\n\r\n'), send]), (f) => frames.push(f));
    assert.equal(frames.length, 1);
  });
});

describe('streaming', () => {
  test('frames coalesced in one chunk all decode, in order', () => {
    const stream = Buffer.concat(Array.from({ length: 50 }, (_, i) => wire('SEND', `n:${i}`, '', `${i}\0`)));
    const frames = decodeFrames(stream);
    assert.deepEqual(
      frames.map((f) => [getHeader(f, 'n'), f.body.toString()]),
      Array.from({ length: 50 }, (_, i) => [String(i), String(i)]),
    );
  });

  test('the version set from onFrame applies to the next frame of the same chunk', () => {
    const decoder = new Decoder();
    const frames: StompFrame[] = [];
    const stream = Buffer.concat([
      wire('CONNECT', 'accept-version:1.2', 'passcode:a\\cb', '', '\0'),
      wire('SEND', 'k:a\\cb', '', '\0'),
    ]);
    decoder.push(stream, (frame) => {
      frames.push(frame);
      if (frame.command === 'CONNECT') decoder.version = '1.2';
    });
    assert.deepEqual(
      frames.map((f) => f.headers.at(-1)),
      [
        ['passcode', 'a\\cb'],
        ['k', 'a:b'],
      ],
    );
  });

  test('midFrame tells a truncated frame from a clean end', () => {
    const decoder = new Decoder();
    decoder.push(text('SE'), noFrame);
    assert.equal(decoder.midFrame, true);
    decoder.push(text('ND\n\nx\0\n'), () => {});
    assert.equal(decoder.midFrame, false);
    assert.throws(() => decodeFrames(text('SEND\n\nno NUL')), { code: 'missing-null' });
  });

  test('a body within a big chunk is copied; one filling it is a view', () => {
    const small = wire('SEND', '', 'tiny\0');
    const big = Buffer.concat([small, wire('SEND', '', `${'x'.repeat(64 * 1024)}\0`)]);
    const frames: StompFrame[] = [];
    new Decoder().push(big, (f) => frames.push(f));
    assert.equal(frames[0]!.body.toString(), 'tiny');
    assert.notEqual(frames[0]!.body.buffer, big.buffer, 'a small body must not pin the chunk');
    assert.equal(frames[1]!.body.length, 64 * 1024);
    assert.equal(frames[1]!.body.buffer, big.buffer, 'a body filling the chunk is not copied');
  });

  test('a body across chunks is assembled into one buffer', () => {
    const stream = wire('SEND', 'content-length:10', '', '0123456789\0');
    const outcome = decodeChunked(stream, { cuts: [20, 23, 27] });
    assert.equal(outcome.frames[0]!.body.toString(), '0123456789');
  });

  test('after an error the decoder refuses all further input with the same error', () => {
    const decoder = new Decoder();
    const error = catchError(() => decoder.push(text('BOGUS\n'), noFrame));
    assert.equal(error.code, 'unknown-command');
    assert.equal(decoder.bufferedBytes, 0);
    assert.equal(
      catchError(() => decoder.push(wire('SEND', '', '\0'), noFrame)),
      error,
    );
  });
});

function catchError(run: () => void): StompCodecError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof StompCodecError, `not a StompCodecError: ${error}`);
    return error;
  }
  assert.fail('no error thrown');
}

interface Invalid {
  name: string;
  code: StompErrorCode;
  wire: Buffer;
  version?: StompVersion;
  limits?: Partial<StompLimits>;
  /** Frames decoded before the error. */
  before?: number;
}

const SMALL: Partial<StompLimits> = { maxFrameSize: 100, maxHeaders: 3, maxHeaderLength: 20 };

const invalid: Invalid[] = [
  { name: 'an unknown command', code: 'unknown-command', wire: wire('FROB', '', '\0') },
  { name: 'a lower-case command', code: 'unknown-command', wire: wire('send', '', '\0') },
  { name: 'a command with trailing space', code: 'unknown-command', wire: wire('SEND ', '', '\0') },
  { name: 'a NUL where a command should start', code: 'unknown-command', wire: text('\0') },
  {
    name: 'a CR between frames not followed by LF',
    code: 'unknown-command',
    wire: Buffer.concat([wire('SEND', '', '\0'), text('\rSEND\n\n\0')]),
    before: 1,
  },
  {
    name: 'the next frame after a body with NULs and no content-length',
    code: 'unknown-command',
    wire: wire('SEND', '', 'a\0b\0'),
    before: 1,
  },
  {
    name: 'a header line without ":"',
    code: 'malformed-header',
    wire: wire('SEND', 'destination', '', '\0'),
  },
  { name: 'a header with an empty name', code: 'malformed-header', wire: wire('SEND', ':v', '', '\0') },
  {
    name: 'a frame missing its blank line: the NUL and the next command make a bad header line',
    code: 'malformed-header',
    wire: wire('SEND', 'a:b', '\0SEND', '', '\0'),
  },
  { name: '1.2: an undefined escape \\t', code: 'bad-escape', wire: wire('SEND', 'a:b\\tc', '', '\0') },
  { name: '1.2: a trailing backslash', code: 'bad-escape', wire: wire('SEND', 'a:b\\', '', '\0') },
  { name: '1.2: an escape in the name', code: 'bad-escape', wire: wire('SEND', 'a\\x:b', '', '\0') },
  {
    name: '1.1: an undefined escape',
    code: 'bad-escape',
    wire: wire('SEND', 'a:\\b', '', '\0'),
    version: '1.1',
  },
  {
    name: 'content-length body not followed by NUL',
    code: 'missing-null',
    wire: wire('SEND', 'content-length:2', '', 'abc\0'),
  },
  {
    name: 'content-length shorter than the text body',
    code: 'missing-null',
    wire: wire('SEND', 'content-length:0', '', 'x\0'),
  },
  {
    name: 'a negative content-length',
    code: 'bad-content-length',
    wire: wire('SEND', 'content-length:-1', '', '\0'),
  },
  {
    name: 'a non-decimal content-length',
    code: 'bad-content-length',
    wire: wire('SEND', 'content-length:0x10', '', '\0'),
  },
  {
    name: 'an empty content-length',
    code: 'bad-content-length',
    wire: wire('SEND', 'content-length:', '', '\0'),
  },
  {
    name: 'a padded content-length',
    code: 'bad-content-length',
    wire: wire('SEND', 'content-length: 1', '', 'a\0'),
  },
  {
    name: 'an exponent content-length',
    code: 'bad-content-length',
    wire: wire('SEND', 'content-length:1e3', '', '\0'),
  },
  {
    name: 'an invalid UTF-8 byte in a value',
    code: 'bad-encoding',
    wire: Buffer.concat([text('SEND\na:'), Buffer.from([0xff]), text('\n\n\0')]),
  },
  {
    name: 'an overlong UTF-8 encoding in a name',
    code: 'bad-encoding',
    wire: Buffer.concat([text('SEND\n'), Buffer.from([0xc0, 0xba]), text(':x\n\n\0')]),
  },
  {
    name: 'a UTF-16 surrogate encoded in UTF-8',
    code: 'bad-encoding',
    wire: Buffer.concat([text('SEND\na:'), Buffer.from([0xed, 0xa0, 0x80]), text('\n\n\0')]),
  },
  {
    name: 'more headers than maxHeaders',
    code: 'too-many-headers',
    wire: wire('SEND', 'a:1', 'b:2', 'c:3', 'd:4', '', '\0'),
    limits: SMALL,
  },
  {
    name: 'a header line longer than maxHeaderLength',
    code: 'header-too-long',
    wire: wire('SEND', `a:${'x'.repeat(19)}`, '', '\0'),
    limits: SMALL,
  },
  {
    name: 'a content-length over maxFrameSize',
    code: 'frame-too-large',
    wire: wire('SEND', 'content-length:90', '', `${'x'.repeat(90)}\0`),
    limits: SMALL,
  },
  {
    name: 'a huge content-length',
    code: 'frame-too-large',
    wire: wire('SEND', 'content-length:9999999999999999', '', '\0'),
  },
  {
    name: 'a NUL-terminated body over maxFrameSize',
    code: 'frame-too-large',
    wire: wire('SEND', '', `${'x'.repeat(100)}\0`),
    limits: SMALL,
  },
  {
    name: 'headers over maxFrameSize',
    code: 'frame-too-large',
    wire: wire('SEND', ...Array.from({ length: 10 }, (_, i) => `h${i}:${'v'.repeat(14)}`), '', '\0'),
    limits: { ...SMALL, maxHeaders: 64 },
  },
];

describe('invalid input: typed errors', () => {
  for (const v of invalid) {
    test(`${v.name} -> ${v.code}`, () => {
      for (const cuts of [[], everyByte(v.wire)]) {
        const outcome = decodeChunked(v.wire, { version: v.version ?? '1.2', limits: v.limits ?? {}, cuts });
        assert.equal(outcome.error?.code, v.code, outcome.error?.message ?? 'no error');
        assert.equal(outcome.frames.length, v.before ?? 0);
        assert.match(
          outcome.error.message,
          /^[\x20-\x7e]+$/,
          'one printable line for an ERROR message header',
        );
      }
    });
  }

  test('1.0 has no escapes, so no bad escape either', () => {
    assert.deepEqual(decodeFrames(wire('SEND', 'a:b\\tc\\', '', '\0'), '1.0')[0]!.headers, [
      ['a', 'b\\tc\\'],
    ]);
  });
});

describe('limits: exact boundaries, refused while buffering', () => {
  const limits: StompLimits = { maxFrameSize: 100, maxHeaders: 3, maxHeaderLength: 20 };
  const decode = (bytes: Buffer) => decodeChunked(bytes, { limits });

  test('maxHeaders headers are accepted', () => {
    assert.equal(decode(wire('SEND', 'a:1', 'b:2', 'c:3', '', '\0')).frames.length, 1);
  });

  test('a header line of exactly maxHeaderLength is accepted, with LF or CRLF', () => {
    const line = `a:${'x'.repeat(18)}`;
    assert.equal(decode(wire('SEND', line, '', '\0')).frames[0]!.headers[0]![1].length, 18);
    assert.equal(decode(text(`SEND\r\n${line}\r\n\r\n\0`)).frames.length, 1);
  });

  test('a frame of exactly maxFrameSize is accepted, with or without content-length', () => {
    const counted = (length: number) => `SEND\ncontent-length:${length}\n\n${'x'.repeat(length)}\0`;
    // The header section is 24 bytes, so 76 bytes of body make exactly 100.
    assert.equal(decode(text(counted(76))).frames[0]!.body.length, 76);
    assert.equal(decode(text(counted(77))).error?.code, 'frame-too-large');
    assert.equal(decode(text(`SEND\n\n${'x'.repeat(94)}\0`)).frames[0]!.body.length, 94);
    assert.equal(decode(text(`SEND\n\n${'x'.repeat(95)}\0`)).error?.code, 'frame-too-large');
  });

  /** Feeds `first`, then up to `rounds` chunks of `more`; returns the error and the most ever buffered. */
  function flood(first: Buffer, more: Buffer, rounds: number, decoder: StompDecoder) {
    let most = 0;
    try {
      decoder.push(first, noFrame);
      for (let i = 0; i < rounds; i++) {
        decoder.push(more, noFrame);
        most = Math.max(most, decoder.bufferedBytes);
      }
    } catch (error) {
      return { error: error as StompCodecError, most };
    }
    return { error: undefined, most };
  }

  test('an endless header line is refused once it passes maxHeaderLength', () => {
    const { error, most } = flood(text('SEND\nname:'), text('x'), 1000, new Decoder(limits));
    assert.equal(error?.code, 'header-too-long');
    assert.ok(most <= limits.maxHeaderLength + 1, `buffered ${most}`);
  });

  test('an endless body without NUL is refused once it passes maxFrameSize', () => {
    const { error, most } = flood(text('SEND\n\n'), text('0123456789'), 1000, new Decoder(limits));
    assert.equal(error?.code, 'frame-too-large');
    assert.ok(most <= limits.maxFrameSize, `buffered ${most}`);
  });

  test('an endless run of headers is refused at maxHeaders', () => {
    const { error } = flood(text('SEND\n'), text('a:b\n'), 1000, new Decoder(limits));
    assert.equal(error?.code, 'too-many-headers');
  });

  test('a content-length over the limit is refused from its header line, before any body', () => {
    const decoder = new Decoder(limits);
    assert.throws(() => decoder.push(text('SEND\ncontent-length:1000\n'), noFrame), {
      code: 'frame-too-large',
    });
  });

  test('an endless command line is refused within a few bytes', () => {
    const { error, most } = flood(text('SUBSCRIBE'), text('E'), 1000, new Decoder(limits));
    assert.equal(error?.code, 'unknown-command');
    assert.equal(most, 0);
  });

  test('garbage is refused at its first byte', () => {
    assert.throws(() => new Decoder().push(text('G'), noFrame), { code: 'unknown-command' });
    assert.throws(() => new Decoder().push(text('SENT'), noFrame), { code: 'unknown-command' });
  });
});

describe('encodeFrame', () => {
  test('adds nothing: no content-length, no trailing EOL', () => {
    assert.equal(
      encodeFrame('SEND', [['destination', '/q']], Buffer.from('a\0b'), '1.2').toString('latin1'),
      'SEND\ndestination:/q\n\na\0b\0',
    );
    assert.equal(encodeFrame('DISCONNECT', [], undefined, '1.0').toString('latin1'), 'DISCONNECT\n\n\0');
  });

  test('escapes only what needs it, per version, and never CONNECT/CONNECTED/STOMP', () => {
    const headers: [string, string][] = [
      ['plain', 'value'],
      ['we:ird', 'a\\b\nc\rd:e'],
    ];
    assert.equal(
      encodeFrame('MESSAGE', headers, undefined, '1.2').toString(),
      'MESSAGE\nplain:value\nwe\\cird:a\\\\b\\nc\\rd\\ce\n\n\0',
    );
    assert.equal(
      encodeFrame('MESSAGE', [['we:ird', 'a\\b\nc:e']], undefined, '1.1').toString(),
      'MESSAGE\nwe\\cird:a\\\\b\\nc\\ce\n\n\0',
    );
    // STOMP 1.1 "Value Encoding" defines \n \c \\ only: a CR cannot be carried, so is refused.
    assert.throws(() => encodeFrame('MESSAGE', headers, undefined, '1.1'), /CR in header/);
    for (const command of ['CONNECT', 'CONNECTED', 'STOMP'])
      assert.equal(
        encodeFrame(command, [['passcode', 'a\\b:c']], undefined, '1.2').toString(),
        `${command}\npasscode:a\\b:c\n\n\0`,
      );
    assert.equal(encodeFrame('SEND', [['k', 'a\\b:c']], undefined, '1.0').toString(), 'SEND\nk:a\\b:c\n\n\0');
  });

  test('writes multi-byte UTF-8 at the right offsets', () => {
    const frame = encodeFrame('SEND', [['ключ', 'значение:☕']], Buffer.from('тело'), '1.2');
    assert.deepEqual(decodeFrames(frame), [
      { command: 'SEND', headers: [['ключ', 'значение:☕']], body: Buffer.from('тело') },
    ]);
  });

  const refused: [string, StompVersion, string, string][] = [
    ['SEND', '1.0', 'k', 'line\nbreak'],
    ['SEND', '1.0', 'k', 'cr\r'],
    ['SEND', '1.0', 'a:b', 'v'],
    ['CONNECT', '1.2', 'login', 'x\ny'],
    ['CONNECTED', '1.2', 'server', 'x\r\ninjected:1'],
    ['SEND', '1.2', '', 'v'],
    ['SEND', '1.2', 'k', 'nul\0'],
    ['SEND', '1.0', 'k\0', 'v'],
  ];
  for (const [command, version, name, value] of refused)
    test(`refuses ${JSON.stringify(name)}:${JSON.stringify(value)} in a ${version} ${command} frame`, () => {
      assert.notEqual(headerEncodingFault(command, name, value, version), undefined);
      assert.throws(
        () =>
          encodeFrame(
            command,
            [
              ['ok', 'ok'],
              [name, value],
            ],
            undefined,
            version,
          ),
        {
          name: 'StompCodecError',
          code: 'malformed-header',
        },
      );
    });

  test('accepts in 1.1/1.2 what escaping can carry', () => {
    assert.equal(headerEncodingFault('SEND', 'a:b', 'x\r\ny', '1.2'), undefined);
    assert.equal(headerEncodingFault('SEND', 'a:b', 'x\ny', '1.1'), undefined);
    assert.match(headerEncodingFault('SEND', 'k', 'x\ry', '1.1') ?? '', /CR in header/);
    assert.equal(headerEncodingFault('SEND', 'k', 'a:b', '1.0'), undefined);
  });
});
