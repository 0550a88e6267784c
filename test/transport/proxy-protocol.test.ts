import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import {
  ipv6Text,
  MAX_V1_LENGTH,
  type ProxyHeader,
  parseProxyHeader,
  readProxyHeader,
} from '../../src/transport/proxy-protocol.js';
import { bytes } from '../helpers/bytes.js';

/**
 * The PROXY protocol parser (HAProxy's proxy-protocol.txt, v1 and v2) on exact bytes: what it
 * takes from each kind of header, that a header split anywhere is only ever "incomplete"
 * until its last byte, and that malformed or oversized headers are refused.
 */

const after = Buffer.from([0x10, 0x0c, 0x00]); // the client's own bytes (the start of a CONNECT)

/** Parses `header` followed by the client's bytes and returns the header, failing unless complete. */
function complete(header: Buffer): ProxyHeader {
  const parsed = parseProxyHeader(Buffer.concat([header, after]));
  assert.equal(parsed.status, 'complete', JSON.stringify(parsed));
  const result = (parsed as { header: ProxyHeader }).header;
  assert.equal(result.length, header.length, 'the header ends where the client bytes start');
  return result;
}

function invalidReason(header: Buffer): string {
  const parsed = parseProxyHeader(header);
  assert.equal(parsed.status, 'invalid', JSON.stringify(parsed));
  return (parsed as { reason: string }).reason;
}

const V2_TCP4 = bytes(`
  0d0a0d0a000d0a515549540a  # signature
  21                        # version 2, command PROXY
  11                        # TCP over IPv4
  000c                      # 12 bytes of addresses follow
  c0000201                  # source 192.0.2.1
  c6336401                  # destination 198.51.100.1
  d431                      # source port 54321
  075b                      # destination port 1883
`);

const V2_TCP6 = bytes(`
  0d0a0d0a000d0a515549540a 21
  21                                   # TCP over IPv6
  0024                                 # 36 bytes
  20010db8 00000000 00000000 00000007  # source 2001:db8::7
  00000000 00000000 00000000 00000001  # destination ::1
  9c40                                 # source port 40000
  22b3                                 # destination port 8883
`);

const V2_LOCAL = bytes(`
  0d0a0d0a000d0a515549540a
  20      # version 2, command LOCAL (a health check from the proxy itself)
  00      # UNSPEC
  0000    # no addresses
`);

const V2_TCP4_WITH_TLVS = bytes(`
  0d0a0d0a000d0a515549540a 21 11
  001e                      # 12 bytes of addresses + 18 of TLVs
  0a000001 0a000002 1f90 075b
  02 0009 "localhost"       # PP2_TYPE_AUTHORITY
  04 0003 000000            # PP2_TYPE_NOOP
`);

const V1_TCP4 = Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.1 54321 1883\r\n');
const V1_TCP6 = Buffer.from('PROXY TCP6 2001:db8::7 ::1 40000 8883\r\n');
const V1_UNKNOWN = Buffer.from('PROXY UNKNOWN\r\n');

describe('PROXY protocol v1', () => {
  test('TCP4: source and destination addresses and ports', () => {
    assert.deepEqual(complete(V1_TCP4), {
      version: 1,
      command: 'proxy',
      source: { address: '192.0.2.1', port: 54321 },
      destination: { address: '198.51.100.1', port: 1883 },
      length: V1_TCP4.length,
    });
  });

  test('TCP6', () => {
    const header = complete(V1_TCP6);
    assert.deepEqual(header.source, { address: '2001:db8::7', port: 40000 });
    assert.deepEqual(header.destination, { address: '::1', port: 8883 });
  });

  test('UNKNOWN, bare or with addresses: no endpoint taken', () => {
    assert.equal(complete(V1_UNKNOWN).source, undefined);
    assert.equal(complete(Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n')).source, undefined);
  });

  test('a line of exactly 107 bytes is accepted; 108 is refused', () => {
    const longest = `PROXY UNKNOWN ${'x'.repeat(MAX_V1_LENGTH - 16)}\r\n`;
    assert.equal(longest.length, MAX_V1_LENGTH);
    complete(Buffer.from(longest));
    const tooLong = `PROXY UNKNOWN ${'x'.repeat(MAX_V1_LENGTH - 15)}\r\n`;
    assert.match(invalidReason(Buffer.from(tooLong)), /longer than 107/);
  });

  test('malformed lines are refused', () => {
    const cases = [
      'PROXY TCP5 192.0.2.1 198.51.100.1 1 2\r\n', // unknown protocol
      'PROXY TCP4 192.0.2.1 198.51.100.1 1\r\n', // a port missing
      'PROXY TCP4 192.0.2.1 198.51.100.1 1 2 3\r\n', // one field too many
      'PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n', // IPv6 in a TCP4 line
      'PROXY TCP6 192.0.2.1 ::1 1 2\r\n', // IPv4 in a TCP6 line
      'PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n', // not an address
      'PROXY TCP4 192.0.2.1 198.51.100.1 65536 2\r\n', // port out of range
      'PROXY TCP4 192.0.2.1 198.51.100.1 -1 2\r\n', // not a number
      'PROXY TCP4 192.0.2.1 198.51.100.1 01 2\r\n', // leading zero
      'PROXY  TCP4 192.0.2.1 198.51.100.1 1 2\r\n', // two spaces
      'PROXY TCP4 192.0.2.1\x00 198.51.100.1 1 2', // not text
      'PROXY\r\n', // nothing after the keyword
      'proxy TCP4 192.0.2.1 198.51.100.1 1 2\r\n', // wrong case
    ];
    for (const line of cases) invalidReason(Buffer.from(line));
  });

  test('bytes that start no header are refused at once', () => {
    assert.match(invalidReason(Buffer.from([0x10])), /no PROXY protocol header/);
    assert.match(invalidReason(Buffer.from('GET / HTTP/1.1\r\n')), /no PROXY protocol header/);
    assert.match(invalidReason(Buffer.from('PRO\x00')), /no PROXY protocol header/);
  });
});

describe('PROXY protocol v2', () => {
  test('PROXY over TCP/IPv4', () => {
    assert.deepEqual(complete(V2_TCP4), {
      version: 2,
      command: 'proxy',
      source: { address: '192.0.2.1', port: 54321 },
      destination: { address: '198.51.100.1', port: 1883 },
      length: 28,
    });
  });

  test('PROXY over TCP/IPv6, addresses written as Node writes them', () => {
    const header = complete(V2_TCP6);
    assert.deepEqual(header.source, { address: '2001:db8::7', port: 40000 });
    assert.deepEqual(header.destination, { address: '::1', port: 8883 });
  });

  test('LOCAL: no endpoint taken (the real connection stands)', () => {
    assert.deepEqual(complete(V2_LOCAL), { version: 2, command: 'local', length: 16 });
  });

  test('TLVs after the addresses are skipped', () => {
    const header = complete(V2_TCP4_WITH_TLVS);
    assert.equal(header.length, 16 + 30);
    assert.deepEqual(header.source, { address: '10.0.0.1', port: 8080 });
  });

  test('UNSPEC, UNIX and datagram headers are accepted without an endpoint', () => {
    for (const familyTransport of [0x00, 0x31, 0x12]) {
      const body = Buffer.alloc(familyTransport === 0x31 ? 216 : familyTransport === 0x12 ? 12 : 0);
      const header = Buffer.concat([
        V2_LOCAL.subarray(0, 12),
        Buffer.from([0x21, familyTransport, 0, body.length]),
        body,
      ]);
      assert.equal(complete(header).source, undefined);
    }
  });

  test('malformed headers are refused', () => {
    const withByte = (at: number, value: number): Buffer => {
      const copy = Buffer.from(V2_TCP4);
      copy[at] = value;
      return copy;
    };
    assert.match(invalidReason(withByte(12, 0x11)), /version 1/);
    assert.match(invalidReason(withByte(12, 0x22)), /unknown command/);
    assert.match(invalidReason(withByte(13, 0x41)), /unknown address family/);
    assert.match(invalidReason(withByte(13, 0x13)), /unknown address family/);
    // An IPv4 block needs 12 bytes; this one declares 8.
    assert.match(
      invalidReason(Buffer.concat([V2_TCP4.subarray(0, 14), Buffer.from([0, 8]), Buffer.alloc(8)])),
      /shorter/,
    );
    // 64 KiB of TLVs is allowed by the format, not by us: refused on the fixed part alone.
    assert.match(
      invalidReason(Buffer.concat([V2_TCP4.subarray(0, 14), Buffer.from([0xff, 0xff])])),
      /longer than/,
    );
    // A signature that goes wrong halfway.
    assert.match(invalidReason(withByte(6, 0x0b)), /no PROXY protocol header/);
  });
});

describe('headers split anywhere', () => {
  const headers = { V1_TCP4, V1_TCP6, V1_UNKNOWN, V2_TCP4, V2_TCP6, V2_LOCAL, V2_TCP4_WITH_TLVS };

  for (const [name, header] of Object.entries(headers)) {
    test(`${name}: every proper prefix is incomplete, never invalid`, () => {
      for (let n = 0; n < header.length; n++)
        assert.deepEqual(parseProxyHeader(header.subarray(0, n)), { status: 'incomplete' }, `at ${n} bytes`);
      complete(header);
    });

    test(`${name}: read from a stream in two chunks split at every offset, the rest put back`, async () => {
      const expected = parseProxyHeader(header);
      const wire = Buffer.concat([header, after]);
      for (let cut = 1; cut < wire.length; cut++) {
        const stream = new PassThrough();
        const reading = readProxyHeader(stream, 5000);
        stream.write(wire.subarray(0, cut));
        await new Promise((r) => setImmediate(r));
        stream.write(wire.subarray(cut));
        assert.deepEqual({ status: 'complete', header: await reading }, expected, `cut at ${cut}`);
        const rest: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => rest.push(chunk));
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(Buffer.concat(rest), after, `the client's bytes after a cut at ${cut}`);
        stream.destroy();
      }
    });
  }
});

describe('reading a header from a stream is bounded', () => {
  test('an invalid header destroys the stream and rejects', async () => {
    const stream = new PassThrough();
    const reading = readProxyHeader(stream, 5000);
    stream.write('PROXY TCP9 x\r\n');
    await assert.rejects(reading, /bad PROXY protocol header: v1 unknown protocol/);
    assert.equal(stream.destroyed, true);
  });

  test('a header that never completes destroys the stream after the timeout', async () => {
    const stream = new PassThrough();
    const reading = readProxyHeader(stream, 50);
    stream.write('PROXY TCP4 ');
    await assert.rejects(reading, /no complete PROXY protocol header within 50 ms/);
    assert.equal(stream.destroyed, true);
  });
});

describe('IPv6 text', () => {
  test('compresses the longest run of zero groups, not a single one; IPv4-mapped as Node writes it', () => {
    const hex = (h: string): Buffer => Buffer.from(h, 'hex');
    assert.equal(ipv6Text(hex('00000000000000000000000000000001')), '::1');
    assert.equal(ipv6Text(hex('00000000000000000000000000000000')), '::');
    assert.equal(ipv6Text(hex('20010db8000000010000000000000001')), '2001:db8:0:1::1');
    assert.equal(ipv6Text(hex('20010db8000100010001000100010001')), '2001:db8:1:1:1:1:1:1');
    assert.equal(ipv6Text(hex('20010db800000001000100010001ffff')), '2001:db8:0:1:1:1:1:ffff');
    assert.equal(ipv6Text(hex('00000000000000000000ffffc0000201')), '::ffff:192.0.2.1');
    assert.equal(ipv6Text(hex('fe800000000000000000000000000000')), 'fe80::');
  });
});
