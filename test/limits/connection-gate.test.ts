import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConnectionGate, type GateDecision, Limits, MemoryWatch } from '../../src/limits/index.js';

/** The protocol-neutral connection gate, with a hand-held clock. */

const OFF = { maxConnections: 0, maxConnectionsPerAddress: 0, connectionRatePerAddress: 0 };

function admitted(decision: GateDecision): () => void {
  assert.equal(decision.admitted, true, `refused: ${JSON.stringify(decision)}`);
  return (decision as { release(): void }).release;
}

function refusal(decision: GateDecision): string {
  return decision.admitted ? 'admitted' : decision.refusal;
}

describe('ConnectionGate', () => {
  test('the total cap: N admitted, the N+1th refused, a release makes room', () => {
    const gate = new ConnectionGate({ ...OFF, maxConnections: 2 });
    const first = admitted(gate.admit('10.0.0.1'));
    admitted(gate.admit('10.0.0.2'));
    assert.equal(refusal(gate.admit('10.0.0.3')), 'total-quota');
    assert.equal(gate.open, 2);
    first();
    first(); // releasing twice counts once
    assert.equal(gate.open, 1);
    admitted(gate.admit('10.0.0.3'));
    assert.equal(gate.refusals['total-quota'], 1);
  });

  test('the per-address cap counts each address apart; IPv4-mapped IPv6 is the IPv4 address', () => {
    const gate = new ConnectionGate({ ...OFF, maxConnectionsPerAddress: 2 });
    admitted(gate.admit('10.0.0.1'));
    admitted(gate.admit('::ffff:10.0.0.1'));
    assert.equal(refusal(gate.admit('10.0.0.1')), 'address-quota');
    assert.equal(gate.openFrom('10.0.0.1'), 2);
    admitted(gate.admit('10.0.0.2'));
    // No address (a Unix socket, say): per-address limits do not apply.
    admitted(gate.admit(undefined));
    admitted(gate.admit(undefined));
    admitted(gate.admit(undefined));
  });

  test('the per-address rate: a burst, then one per refill; other addresses are unaffected', () => {
    let now = 0;
    const gate = new ConnectionGate(
      { ...OFF, connectionRatePerAddress: 10, connectionBurstPerAddress: 3 },
      { now: () => now },
    );
    for (let i = 0; i < 3; i++) admitted(gate.admit('10.0.0.1'))();
    assert.equal(refusal(gate.admit('10.0.0.1')), 'connection-rate');
    admitted(gate.admit('10.0.0.2'));
    now = 100; // one token back at 10/s
    admitted(gate.admit('10.0.0.1'));
    assert.equal(refusal(gate.admit('10.0.0.1')), 'connection-rate');
    assert.equal(gate.refusals['connection-rate'], 2);
  });

  test('refused attempts still count against the rate: a flood stays refused', () => {
    let now = 0;
    const gate = new ConnectionGate(
      { ...OFF, maxConnectionsPerAddress: 1, connectionRatePerAddress: 1, connectionBurstPerAddress: 2 },
      { now: () => now },
    );
    admitted(gate.admit('10.0.0.1'));
    assert.equal(refusal(gate.admit('10.0.0.1')), 'address-quota');
    assert.equal(refusal(gate.admit('10.0.0.1')), 'connection-rate');
    now = 1000;
    assert.equal(refusal(gate.admit('10.0.0.1')), 'address-quota');
  });

  test('memory above its high-water mark refuses everyone as server-busy', () => {
    let bytes = 100;
    const memory = new MemoryWatch({ highWaterMark: 1000, lowWaterMark: 500 }, () => bytes);
    const gate = new ConnectionGate(OFF, { memory });
    admitted(gate.admit('10.0.0.1'));
    bytes = 2000;
    memory.sample();
    assert.equal(refusal(gate.admit('10.0.0.1')), 'server-busy');
    bytes = 400;
    memory.sample();
    admitted(gate.admit('10.0.0.1'));
  });

  test('chained gates: a listener gate and the process gate must both admit; releases reach both', () => {
    const process = new Limits({ ...OFF, maxConnections: 3, memoryHighWaterMark: -1 });
    const listenerA = process.forListener({ maxConnections: 2 });
    const listenerB = process.forListener({});
    const a1 = admitted(listenerA.gate.admit('10.0.0.1'));
    admitted(listenerA.gate.admit('10.0.0.1'));
    assert.equal(refusal(listenerA.gate.admit('10.0.0.1')), 'total-quota');
    admitted(listenerB.gate.admit('10.0.0.1'));
    assert.equal(process.gate.open, 3);
    // The process cap refuses through a listener with room of its own, and the listener does not count it.
    assert.equal(refusal(listenerB.gate.admit('10.0.0.1')), 'total-quota');
    assert.equal(listenerB.gate.open, 1);
    a1();
    assert.equal(process.gate.open, 2);
    assert.equal(listenerA.gate.open, 1);
    admitted(listenerB.gate.admit('10.0.0.1'));
    process.close();
  });

  test('many addresses seen once are forgotten again (the table does not grow without bound)', () => {
    let now = 0;
    const gate = new ConnectionGate(
      { ...OFF, connectionRatePerAddress: 100, connectionBurstPerAddress: 100 },
      { now: () => now },
    );
    for (let i = 0; i < 5000; i++) {
      now += 1000;
      admitted(gate.admit(`10.1.${i >> 8}.${i & 255}`))();
    }
    const table = (gate as unknown as { addresses: Map<string, unknown> }).addresses;
    assert.ok(table.size <= 1100, `address table holds ${table.size} entries`);
  });
});
