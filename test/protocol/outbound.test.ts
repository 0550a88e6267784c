import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Duplex } from 'node:stream';
import { describe, test } from 'node:test';
import { type OutboundEvents, OutboundWriter } from '../../src/protocol/outbound.js';

/**
 * OutboundWriter against a fake socket with a small high-water mark whose reader can stop:
 * writes of one tick leave together, bytes past the mark are parked and follow in order on
 * 'drain', `end` flushes what is parked, and the slow-consumer limits count every unsent byte.
 */

const MARK = 64;

/** A Duplex standing for a socket: what it "sends" is kept; while not reading, writes stay pending. */
class FakeSocket extends Duplex {
  readonly sent: Buffer[] = [];
  /** Chunks per vectored write handed to the socket. */
  readonly batches: number[] = [];
  finished = false;
  private reading = true;
  private held: (() => void)[] = [];

  constructor() {
    super({ writableHighWaterMark: MARK });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.accept([chunk], done);
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    done: (error?: Error | null) => void,
  ): void {
    this.accept(
      chunks.map((c) => c.chunk),
      done,
    );
  }

  override _final(done: (error?: Error | null) => void): void {
    this.finished = true;
    done();
  }

  stopReading(): void {
    this.reading = false;
  }

  startReading(): void {
    this.reading = true;
    const held = this.held;
    this.held = [];
    for (const release of held) release();
  }

  get text(): string {
    return Buffer.concat(this.sent).toString();
  }

  private accept(chunks: Buffer[], done: () => void): void {
    const deliver = (): void => {
      this.batches.push(chunks.length);
      this.sent.push(...chunks);
      done();
    };
    if (this.reading) deliver();
    else this.held.push(deliver);
  }
}

interface Recorded {
  softCrossings: number;
  hardCrossings: number;
  drains: number;
  flushes: number;
  onDrained: (() => void) | undefined;
}

/** Resolves when the writer next reports 'drained'. */
function nextDrained(seen: Recorded): Promise<void> {
  return new Promise((resolve) => {
    seen.onDrained = resolve;
  });
}

function writerOn(
  socket: FakeSocket,
  limits: { softLimit: number; hardLimit: number; largestFrame: number },
): { writer: OutboundWriter; seen: Recorded; counter: { bytesSent: number } } {
  const seen: Recorded = { softCrossings: 0, hardCrossings: 0, drains: 0, flushes: 0, onDrained: undefined };
  const counter = { bytesSent: 0 };
  const events: OutboundEvents = {
    overSoftLimit: () => seen.softCrossings++,
    overHardLimit: () => seen.hardCrossings++,
    drained: () => {
      seen.drains++;
      seen.onDrained?.();
    },
    flushed: () => seen.flushes++,
  };
  return { writer: new OutboundWriter(socket, limits, counter, events), seen, counter };
}

const tick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));
const frame = (i: number): Buffer => Buffer.from(`<${String(i).padStart(6, '0')}>`); // 8 bytes

describe('OutboundWriter', () => {
  test("one tick's writes reach the socket as one vectored write, after the tick", async () => {
    const socket = new FakeSocket();
    const { writer, seen, counter } = writerOn(socket, { softLimit: 0, hardLimit: 0, largestFrame: 0 });
    for (let i = 0; i < 3; i++) assert.equal(writer.write(frame(i)), true);
    assert.equal(socket.sent.length, 0, 'corked until the end of the tick');
    await tick();
    assert.deepEqual(socket.batches, [3]);
    assert.equal(socket.text, '<000000><000001><000002>');
    assert.equal(seen.flushes, 1);
    assert.equal(counter.bytesSent, 24);
    assert.equal(writer.unsentBytes, 0);
  });

  test('limits are never below the mark (soft) nor below soft plus one largest frame (hard)', () => {
    const { writer } = writerOn(new FakeSocket(), { softLimit: 10, hardLimit: 20, largestFrame: 100 });
    assert.equal(writer.softLimit, MARK);
    assert.equal(writer.hardLimit, MARK + 100);
  });

  test('past the mark bytes are parked, and follow in order on drain until none is left', async () => {
    const socket = new FakeSocket();
    const { writer, seen, counter } = writerOn(socket, {
      softLimit: 10_000,
      hardLimit: 100_000,
      largestFrame: 8,
    });
    socket.stopReading();
    const count = 100;
    for (let i = 0; i < count; i++) assert.equal(writer.write(frame(i)), true);
    // The socket's buffer holds about its mark; the rest waits in the writer, counted all the same.
    assert.ok(socket.writableLength <= MARK, `${socket.writableLength} bytes in the socket`);
    assert.equal(writer.unsentBytes, count * 8);
    assert.equal(counter.bytesSent, count * 8);
    await tick();
    // The socket took one batch and awaits the reader; a later write waits behind the parked ones.
    assert.equal(writer.write(frame(count)), true);
    assert.ok(socket.writableLength <= MARK);
    const drained = nextDrained(seen);
    socket.startReading();
    await drained;
    const expected = Array.from({ length: count + 1 }, (_, i) => frame(i).toString()).join('');
    assert.equal(socket.text, expected);
    assert.equal(writer.unsentBytes, 0);
    assert.equal(seen.drains, 1, "'drained' once, only when nothing is parked");
    // Every unpark stays within about the mark: no batch larger than the mark allows.
    assert.ok(Math.max(...socket.batches) * 8 <= MARK + 8, `batches ${socket.batches.join(',')}`);
    assert.equal(seen.softCrossings, 0);
  });

  test('end() writes the parked bytes before ending the stream', async () => {
    const socket = new FakeSocket();
    const { writer } = writerOn(socket, { softLimit: 10_000, hardLimit: 100_000, largestFrame: 8 });
    socket.stopReading();
    for (let i = 0; i < 40; i++) writer.write(frame(i));
    assert.ok(writer.unsentBytes > socket.writableLength, 'some bytes are parked');
    writer.end();
    assert.equal(writer.unsentBytes, socket.writableLength, 'nothing parked any more');
    socket.startReading();
    await once(socket, 'finish');
    assert.ok(socket.finished);
    assert.equal(socket.text, Array.from({ length: 40 }, (_, i) => frame(i).toString()).join(''));
  });

  test('over the soft limit writes return false; over the hard limit the connection hears once, a tick later', async () => {
    const socket = new FakeSocket();
    const { writer, seen } = writerOn(socket, { softLimit: 100, hardLimit: 200, largestFrame: 8 });
    socket.stopReading();
    let writes = 0;
    while (writer.write(frame(writes))) writes++;
    // The write that took the unsent bytes over 100 said so.
    assert.equal(writes, 12);
    assert.equal(writer.unsentBytes, 13 * 8);
    assert.equal(seen.softCrossings, 1);
    for (let i = 0; i < 20; i++) writer.write(frame(100 + i));
    assert.ok(writer.unsentBytes > 200);
    assert.equal(seen.hardCrossings, 0, 'not from inside a write');
    await tick();
    assert.equal(seen.hardCrossings, 1);
    writer.write(frame(200));
    await tick();
    assert.equal(seen.hardCrossings, 1, 'reported once');
    assert.equal(seen.softCrossings, 22);
  });

  test('a reader that catches up makes the writer report drained; writes then succeed again', async () => {
    const socket = new FakeSocket();
    const { writer, seen } = writerOn(socket, { softLimit: 100, hardLimit: 10_000, largestFrame: 8 });
    socket.stopReading();
    let writes = 0;
    while (writer.write(frame(writes))) writes++;
    assert.equal(seen.drains, 0);
    const drained = nextDrained(seen);
    socket.startReading();
    await drained;
    assert.equal(writer.unsentBytes, 0);
    assert.equal(writer.write(frame(writes + 1)), true);
    assert.equal(socket.text.length, (writes + 1) * 8);
  });
});
