import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { RetainedTree, SubscriptionTree } from '../../src/broker/topic-tree.js';
import { refMatches } from '../helpers/topic-reference.js';

/**
 * Topic matching (MQTT 3.1.1 / 5.0 section 4.7): the specification's examples as a table run
 * against both trees and against a naive reference matcher, then property-based tests comparing
 * both trees with that reference on random filters, topics and add/remove sequences.
 */

/** `filter|value` strings visited by SubscriptionTree.match, sorted (duplicates kept). */
function subMatches<V>(tree: SubscriptionTree<V>, topic: string): string[] {
  const out: string[] = [];
  tree.match(topic, (value, filter) => out.push(`${filter}|${String(value)}`));
  return out.sort();
}

/** `topic|value` strings visited by RetainedTree.match, sorted (duplicates kept). */
function retMatches<V>(tree: RetainedTree<V>, filter: string): string[] {
  const out: string[] = [];
  tree.match(filter, (value, topic) => out.push(`${topic}|${String(value)}`));
  return out.sort();
}

/** The private parts the pruning tests look at. */
interface SubInternals {
  exact: Map<string, unknown>;
  root: { children: Map<string, unknown> | null; plus: unknown; hash: unknown; entry: unknown };
}
interface RetInternals {
  byTopic: Map<string, unknown>;
  root: { children: Map<string, unknown> | null };
}
const subInternals = <V>(t: SubscriptionTree<V>): SubInternals => t as unknown as SubInternals;
const retInternals = <V>(t: RetainedTree<V>): RetInternals => t as unknown as RetInternals;

function assertSubEmpty<V>(tree: SubscriptionTree<V>): void {
  const { exact, root } = subInternals(tree);
  assert.equal(tree.size, 0);
  assert.equal(tree.filterCount, 0);
  assert.equal(exact.size, 0);
  assert.equal(root.children, null, 'root has no children left');
  assert.equal(root.plus, null);
  assert.equal(root.hash, null);
}

// ---------------------------------------------------------------------------------------------
// The specification's examples (3.1.1 and 5.0 section 4.7), plus edge cases of the same rules.

const TABLE: [filter: string, topic: string, matches: boolean][] = [
  // 4.7.1.2 multi-level wildcard
  ['sport/tennis/player1/#', 'sport/tennis/player1', true],
  ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true],
  ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
  ['sport/tennis/player1/#', 'sport/tennis/player2', false],
  ['sport/tennis/player1/#', 'sport/tennis', false],
  ['sport/#', 'sport', true],
  ['sport/#', 'sport/', true],
  ['sport/#', 'sports', false],
  ['sport/#', 'sport/tennis/player1', true],
  ['#', 'sport', true],
  ['#', 'sport/tennis/player1', true],
  ['#', '/', true],
  ['#', '/finance', true],
  ['+/tennis/#', 'sport/tennis/player1/ranking', true],
  ['+/tennis/#', 'sport/tennis', true],
  ['+/tennis/#', 'sport/golf', false],
  // 4.7.1.3 single-level wildcard
  ['sport/tennis/+', 'sport/tennis/player1', true],
  ['sport/tennis/+', 'sport/tennis/player2', true],
  ['sport/tennis/+', 'sport/tennis/player1/ranking', false],
  ['sport/tennis/+', 'sport/tennis', false],
  ['sport/+', 'sport', false],
  ['sport/+', 'sport/', true],
  ['+', 'sport', true],
  ['+/+', '/finance', true],
  ['/+', '/finance', true],
  ['+', '/finance', false],
  ['+/+', 'a/b/c', false],
  ['+/+/+', 'a//c', true],
  ['a/+/b', 'a//b', true],
  ['a/+/b', 'a/b', false],
  ['sport/+/player1', 'sport/tennis/player1', true],
  ['+/+', '/', true],
  ['/+', '/', true],
  ['+', '/', false],
  // Empty levels are real levels, and names are case sensitive (4.7.3).
  ['/a', '/a', true],
  ['/a', 'a', false],
  ['a', '/a', false],
  ['a//b', 'a//b', true],
  ['a//b', 'a/b', false],
  ['a/', 'a', false],
  ['a/', 'a/', true],
  ['ACCOUNTS', 'Accounts', false],
  ['Accounts payable', 'Accounts payable', true],
  ['sport/tennis/player1', 'sport/tennis/player1', true],
  ['sport/tennis/player1', 'sport/tennis/player1/', false],
  // 4.7.2 topics beginning with '$' (MQTT-4.7.2-1)
  ['#', '$SYS', false],
  ['#', '$SYS/monitor/Clients', false],
  ['+', '$SYS', false],
  ['+/monitor/Clients', '$SYS/monitor/Clients', false],
  ['+/#', '$SYS/x', false],
  ['$SYS/#', '$SYS/monitor/Clients', true],
  ['$SYS/#', '$SYS', true],
  ['$SYS/monitor/+', '$SYS/monitor/Clients', true],
  ['$SYS/+', '$SYS/x', true],
  ['$SYS', '$SYS', true],
  ['$SYS/#', '$SYSTEM/x', false],
  ['$', '$', true],
  ['+/$x', 'a/$x', true],
  ['a/#', 'a/$x', true],
  ['a/+', 'a/$x', true],
  ['#', 'a$', true],
];

describe('topic matching: specification examples', () => {
  for (const [filter, topic, expected] of TABLE) {
    test(`'${filter}' ${expected ? 'matches' : 'does not match'} '${topic}'`, () => {
      assert.equal(refMatches(filter, topic), expected, 'reference matcher');

      const subs = new SubscriptionTree<string>();
      subs.add(filter, 'v');
      assert.deepEqual(subMatches(subs, topic), expected ? [`${filter}|v`] : [], 'SubscriptionTree');

      const retained = new RetainedTree<string>();
      retained.set(topic, 'm');
      assert.deepEqual(retMatches(retained, filter), expected ? [`${topic}|m`] : [], 'RetainedTree');
    });
  }

  test('all table filters in one SubscriptionTree, all table topics in one RetainedTree', () => {
    const subs = new SubscriptionTree<string>();
    const retained = new RetainedTree<string>();
    const filters = [...new Set(TABLE.map((r) => r[0]))];
    const topics = [...new Set(TABLE.map((r) => r[1]))];
    for (const f of filters) subs.add(f, 'v');
    for (const t of topics) retained.set(t, 'm');
    for (const t of topics) {
      const expected = filters
        .filter((f) => refMatches(f, t))
        .map((f) => `${f}|v`)
        .sort();
      assert.deepEqual(subMatches(subs, t), expected, `topic '${t}'`);
    }
    for (const f of filters) {
      const expected = topics
        .filter((t) => refMatches(f, t))
        .map((t) => `${t}|m`)
        .sort();
      assert.deepEqual(retMatches(retained, f), expected, `filter '${f}'`);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('SubscriptionTree', () => {
  test('visits each (filter, value) pair once, with the filter it matched by', () => {
    const tree = new SubscriptionTree<string>();
    tree.add('a/b', 'x');
    tree.add('a/+', 'x');
    tree.add('a/#', 'x');
    tree.add('#', 'y');
    tree.add('a/b', 'y');
    assert.deepEqual(subMatches(tree, 'a/b'), ['#|y', 'a/#|x', 'a/+|x', 'a/b|x', 'a/b|y']);
    assert.deepEqual(subMatches(tree, 'a'), ['#|y', 'a/#|x']);
    assert.deepEqual(subMatches(tree, 'b'), ['#|y']);
    assert.deepEqual(subMatches(tree, '$b'), []);
  });

  test('add is idempotent per (filter, value); size and filterCount count pairs and filters', () => {
    const tree = new SubscriptionTree<object>();
    const a = {};
    const b = {};
    tree.add('t/1', a);
    tree.add('t/1', a);
    tree.add('t/+', a);
    tree.add('t/+', a);
    tree.add('t/+', b);
    assert.equal(tree.size, 3);
    assert.equal(tree.filterCount, 2);
    const seen: object[] = [];
    tree.match('t/1', (v) => seen.push(v));
    assert.equal(seen.length, 3);
  });

  test('remove works by identity, reports whether anything was removed, and leaves others alone', () => {
    const tree = new SubscriptionTree<{ id: number }>();
    const a = { id: 1 };
    const lookalike = { id: 1 };
    tree.add('x/#', a);
    assert.equal(tree.remove('x/#', lookalike), false);
    assert.equal(tree.remove('x/+', a), false);
    assert.equal(tree.remove('x', a), false);
    assert.equal(tree.remove('nope/#', a), false);
    assert.equal(tree.size, 1);
    assert.equal(tree.remove('x/#', a), true);
    assert.equal(tree.remove('x/#', a), false);
    assertSubEmpty(tree);
  });

  test('removing the last value prunes the nodes, keeping nodes other filters need', () => {
    const tree = new SubscriptionTree<number>();
    tree.add('a/+/c/#', 1);
    tree.add('a/+/c', 2);
    tree.add('a/b', 3);
    tree.add('+/+/+', 4);
    assert.equal(tree.remove('a/+/c/#', 1), true);
    assert.deepEqual(subMatches(tree, 'a/z/c'), ['+/+/+|4', 'a/+/c|2']);
    assert.equal(tree.remove('a/+/c', 2), true);
    assert.deepEqual(subMatches(tree, 'a/z/c'), ['+/+/+|4']);
    const { root } = subInternals(tree);
    assert.equal(root.children, null, "the 'a' branch is gone");
    assert.equal(tree.remove('+/+/+', 4), true);
    assert.equal(tree.remove('a/b', 3), true);
    assertSubEmpty(tree);
  });

  test('churn does not grow the tree', () => {
    const tree = new SubscriptionTree<number>();
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 200; i++) {
        tree.add(`dev/${i}/cmd`, i);
        tree.add(`dev/${i}/+/x/#`, i);
        tree.add(`+/${i % 7}/#`, i);
        tree.add(`/${i}//+`, i);
      }
      for (let i = 0; i < 200; i++) {
        assert.equal(tree.remove(`dev/${i}/cmd`, i), true);
        assert.equal(tree.remove(`dev/${i}/+/x/#`, i), true);
        assert.equal(tree.remove(`+/${i % 7}/#`, i), true);
        assert.equal(tree.remove(`/${i}//+`, i), true);
      }
      assertSubEmpty(tree);
    }
  });

  test('many values under one filter (indexed list): add, dedupe, remove, match', () => {
    const tree = new SubscriptionTree<number>();
    const n = 1000;
    for (let i = 0; i < n; i++) {
      tree.add('big/+', i);
      tree.add('big/t', i);
    }
    for (let i = 0; i < n; i++) tree.add('big/+', i);
    assert.equal(tree.size, 2 * n);
    for (let i = 0; i < n; i += 2) assert.equal(tree.remove('big/+', i), true);
    for (let i = 0; i < n; i += 2) assert.equal(tree.remove('big/+', i), false);
    const seen: number[] = [];
    tree.match('big/u', (v) => seen.push(v));
    assert.deepEqual(
      seen.sort((x, y) => x - y),
      Array.from({ length: n / 2 }, (_, k) => 2 * k + 1),
    );
    for (let i = 1; i < n; i += 2) assert.equal(tree.remove('big/+', i), true);
    for (let i = 0; i < n; i++) assert.equal(tree.remove('big/t', i), true);
    assertSubEmpty(tree);
  });

  test('deep topics and filters do not overflow the stack', () => {
    const depth = 20_000;
    const topic = Array.from({ length: depth }, (_, i) => `l${i % 3}`).join('/');
    const tree = new SubscriptionTree<string>();
    const plusFilter = topic.replace(/l1/g, '+');
    tree.add(topic, 'exact');
    tree.add(plusFilter, 'plus');
    tree.add(`${topic.slice(0, topic.lastIndexOf('/'))}/#`, 'hash');
    assert.deepEqual(
      subMatches(tree, topic)
        .map((s) => s.slice(s.indexOf('|') + 1))
        .sort(),
      ['exact', 'hash', 'plus'],
    );
    assert.equal(tree.remove(plusFilter, 'plus'), true);
    assert.equal(tree.remove(topic, 'exact'), true);
    assert.equal(tree.remove(`${topic.slice(0, topic.lastIndexOf('/'))}/#`, 'hash'), true);
    assertSubEmpty(tree);
  });

  test('a visitor may remove and add subscriptions during a match', () => {
    const tree = new SubscriptionTree<number>();
    const original = new Set<string>();
    for (let i = 0; i < 40; i++) {
      for (const f of ['a/b', 'a/+', '+/b']) {
        tree.add(f, i);
        original.add(`${f}|${i}`);
      }
    }
    const seen: string[] = [];
    const removed = new Set<string>();
    const added = new Set<string>();
    tree.match('a/b', (v, f) => {
      seen.push(`${f}|${v}`);
      // Remove the current pair, some not yet visited ones, and add new ones.
      for (const [rf, rv] of [
        [f, v],
        ['a/b', (v + 7) % 40],
        ['a/+', (v + 3) % 40],
      ] as const) {
        if (tree.remove(rf, rv)) removed.add(`${rf}|${rv}`);
      }
      for (const [af, av] of [
        ['a/b', 100 + v],
        ['a/#', v],
      ] as const) {
        tree.add(af, av);
        added.add(`${af}|${av}`);
      }
    });
    assert.equal(new Set(seen).size, seen.length, 'no pair visited twice');
    for (const s of seen) assert.ok(original.has(s) || added.has(s), `${s} existed`);
    for (const s of original) if (!removed.has(s)) assert.ok(seen.includes(s), `${s} was visited`);
    // Removing only the pair being visited: every original pair is visited.
    const tree2 = new SubscriptionTree<number>();
    for (let i = 0; i < 40; i++) for (const f of ['x/y', 'x/+', '#']) tree2.add(f, i);
    let count = 0;
    tree2.match('x/y', (v, f) => {
      count++;
      assert.equal(tree2.remove(f, v), true);
    });
    assert.equal(count, 120);
    assertSubEmpty(tree2);
  });

  test('a visitor may match again (nested match)', () => {
    const tree = new SubscriptionTree<string>();
    tree.add('a/+', 'p');
    tree.add('+/x', 'r');
    tree.add('a/#', 'h');
    tree.add('b/+', 'q');
    tree.add('+/y', 's');
    const seen: string[] = [];
    let nested = false;
    tree.match('a/x', (v) => {
      seen.push(v);
      // The inner walk must not disturb the outer one's frontier (which holds 'a/+' and '+/x').
      if ((v === 'p' || v === 'r') && !nested) {
        nested = true;
        tree.match('b/y', (w) => seen.push(`inner:${w}`));
      }
    });
    assert.deepEqual(seen.sort(), ['h', 'inner:q', 'inner:s', 'p', 'r']);
  });

  test('a visitor throwing leaves the tree usable', () => {
    const tree = new SubscriptionTree<string>();
    tree.add('a', 'v');
    tree.add('+', 'w');
    assert.throws(() =>
      tree.match('a', () => {
        throw new Error('boom');
      }),
    );
    tree.remove('a', 'v');
    assert.deepEqual(subMatches(tree, 'a'), ['+|w']);
  });
});

// ---------------------------------------------------------------------------------------------

describe('RetainedTree', () => {
  test('set, get, has, overwrite, delete, size', () => {
    const tree = new RetainedTree<string>();
    assert.equal(tree.get('a/b'), undefined);
    tree.set('a/b', '1');
    tree.set('a', '2');
    tree.set('a/b', '3');
    assert.equal(tree.size, 2);
    assert.equal(tree.get('a/b'), '3');
    assert.equal(tree.get('a'), '2');
    assert.equal(tree.has('a/b'), true);
    assert.equal(tree.get('a/'), undefined);
    assert.equal(tree.delete('a/'), false);
    assert.equal(tree.delete('a'), true);
    assert.equal(tree.delete('a'), false);
    assert.equal(tree.get('a'), undefined);
    assert.equal(tree.get('a/b'), '3');
    assert.deepEqual(retMatches(tree, 'a/#'), ['a/b|3']);
    assert.equal(tree.size, 1);
  });

  test('values() and entries() list everything stored', () => {
    const tree = new RetainedTree<number>();
    tree.set('x', 1);
    tree.set('x/y', 2);
    tree.set('$SYS/z', 3);
    tree.delete('x');
    assert.deepEqual([...tree.values()].sort(), [2, 3]);
    assert.deepEqual(
      [...tree.entries()].sort((a, b) => a[1] - b[1]),
      [
        ['x/y', 2],
        ['$SYS/z', 3],
      ],
    );
  });

  test('delete prunes empty levels', () => {
    const tree = new RetainedTree<number>();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 300; i++) tree.set(`a/${i % 10}/${i}//x`, i);
      tree.set('a', -1);
      for (let i = 0; i < 300; i++) assert.equal(tree.delete(`a/${i % 10}/${i}//x`), true);
      assert.deepEqual(retMatches(tree, '#'), ['a|-1']);
      const a = retInternals(tree).root.children?.get('a') as { children: unknown };
      assert.equal(a.children, null, "'a' keeps its value but no children");
      assert.equal(tree.delete('a'), true);
      assert.equal(tree.size, 0);
      assert.equal(retInternals(tree).root.children, null);
      assert.equal(retInternals(tree).byTopic.size, 0);
    }
  });

  test('match walks the filter: cost follows the matched subtree, not the number of topics', () => {
    const tree = new RetainedTree<number>();
    for (let i = 0; i < 5000; i++) tree.set(`big/${i}/data`, i);
    tree.set('small/1/data', 1);
    tree.set('small/2/other', 2);
    // Count how many trie nodes a match touches by counting Map iterations through a spy.
    const children = retInternals(tree).root.children!;
    const big = children.get('big') as { children: Map<string, unknown> };
    const original = big.children.values.bind(big.children);
    let scans = 0;
    big.children.values = () => {
      scans++;
      return original();
    };
    assert.deepEqual(retMatches(tree, 'small/+/data'), ['small/1/data|1']);
    assert.deepEqual(retMatches(tree, '+/1/data'), ['big/1/data|1', 'small/1/data|1']);
    assert.deepEqual(retMatches(tree, 'small/#'), ['small/1/data|1', 'small/2/other|2']);
    assert.equal(scans, 0, "the 5000 children of 'big' are not iterated");
    assert.equal(retMatches(tree, 'big/+/data').length, 5000);
    assert.equal(scans, 1);
  });

  test('deep topics do not overflow the stack', () => {
    const depth = 20_000;
    const topic = Array.from({ length: depth }, (_, i) => `l${i % 3}`).join('/');
    const tree = new RetainedTree<string>();
    tree.set(topic, 'deep');
    tree.set('l0', 'top');
    assert.deepEqual(retMatches(tree, '#').length, 2);
    assert.deepEqual(retMatches(tree, topic.replace(/l2/g, '+')), [`${topic}|deep`]);
    assert.deepEqual(retMatches(tree, 'l0/+/l2/#'), [`${topic}|deep`]);
    assert.equal(tree.delete(topic), true);
    assert.deepEqual(retMatches(tree, '#'), ['l0|top']);
    const l0 = retInternals(tree).root.children?.get('l0') as { children: unknown };
    assert.equal(l0.children, null);
  });

  test('a visitor may delete and set entries during a match', () => {
    const tree = new RetainedTree<number>();
    for (let i = 0; i < 50; i++) tree.set(`t/${i}`, i);
    const seen: number[] = [];
    tree.match('t/#', (v) => {
      seen.push(v);
      tree.delete(`t/${(v + 1) % 50}`);
      tree.set(`t/new/${v}`, 1000 + v);
    });
    assert.equal(new Set(seen).size, seen.length, 'nothing visited twice');
    for (const v of seen) if (v < 1000) assert.ok(v >= 0 && v < 50);
  });
});

// ---------------------------------------------------------------------------------------------
// Property-based: both trees against the reference matcher, over small alphabets so that
// filters and topics collide often.

const topicLevel = fc.constantFrom('', 'a', 'b', '$', '$a');
const topicArb = fc.array(topicLevel, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('/'));
const filterArb = fc
  .tuple(
    fc.array(fc.constantFrom('', 'a', 'b', '$', '$a', '+', '+'), { minLength: 0, maxLength: 4 }),
    fc.boolean(),
  )
  .filter(([levels, hash]) => levels.length > 0 || hash)
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'));
const valueArb = fc.integer({ min: 0, max: 3 });

type SubOp = { op: 'add' | 'remove'; filter: string; value: number };
const subOpArb: fc.Arbitrary<SubOp> = fc.record({
  op: fc.constantFrom<'add' | 'remove'>('add', 'add', 'remove'),
  filter: filterArb,
  value: valueArb,
});

describe('property: SubscriptionTree agrees with the reference matcher', () => {
  test('filters a reference matcher accepts are exactly those visited', () => {
    fc.assert(
      fc.property(
        fc.array(subOpArb, { maxLength: 60 }),
        fc.array(topicArb, { maxLength: 20 }),
        (ops, topics) => {
          const tree = new SubscriptionTree<number>();
          const model = new Map<string, Set<number>>();
          for (const { op, filter, value } of ops) {
            if (op === 'add') {
              tree.add(filter, value);
              const set = model.get(filter) ?? new Set<number>();
              set.add(value);
              model.set(filter, set);
            } else {
              const set = model.get(filter);
              const expected = set?.delete(value) ?? false;
              if (set?.size === 0) model.delete(filter);
              assert.equal(tree.remove(filter, value), expected, `remove ${filter} ${value}`);
            }
          }
          let pairs = 0;
          for (const set of model.values()) pairs += set.size;
          assert.equal(tree.size, pairs);
          assert.equal(tree.filterCount, model.size);
          for (const topic of [...topics, ...ops.map((o) => o.filter.replace(/\+|#/g, 'a'))]) {
            const expected: string[] = [];
            for (const [filter, set] of model) {
              if (refMatches(filter, topic)) for (const v of set) expected.push(`${filter}|${v}`);
            }
            assert.deepEqual(subMatches(tree, topic), expected.sort(), `topic '${topic}'`);
          }
          // Removing everything leaves an empty, fully pruned tree.
          for (const [filter, set] of model) for (const v of set) assert.equal(tree.remove(filter, v), true);
          assertSubEmpty(tree);
        },
      ),
      { numRuns: 500 },
    );
  });
});

type RetOp = { op: 'set' | 'delete'; topic: string; value: number };
const retOpArb: fc.Arbitrary<RetOp> = fc.record({
  op: fc.constantFrom<'set' | 'delete'>('set', 'set', 'delete'),
  topic: topicArb,
  value: valueArb,
});

describe('property: RetainedTree agrees with a scan using the reference matcher', () => {
  test('match visits exactly the stored topics the filter matches', () => {
    fc.assert(
      fc.property(
        fc.array(retOpArb, { maxLength: 60 }),
        fc.array(filterArb, { maxLength: 20 }),
        (ops, filters) => {
          const tree = new RetainedTree<number>();
          const model = new Map<string, number>();
          for (const { op, topic, value } of ops) {
            if (op === 'set') {
              tree.set(topic, value);
              model.set(topic, value);
            } else {
              assert.equal(tree.delete(topic), model.delete(topic), `delete ${topic}`);
            }
          }
          assert.equal(tree.size, model.size);
          for (const [topic, value] of model) assert.equal(tree.get(topic), value);
          assert.deepEqual(
            [...tree.values()].sort(),
            [...model.values()].sort(),
            'values() lists every stored value',
          );
          for (const filter of [...filters, ...ops.map((o) => o.topic)]) {
            const expected: string[] = [];
            for (const [topic, value] of model)
              if (refMatches(filter, topic)) expected.push(`${topic}|${value}`);
            assert.deepEqual(retMatches(tree, filter), expected.sort(), `filter '${filter}'`);
          }
          for (const topic of model.keys()) assert.equal(tree.delete(topic), true);
          assert.equal(tree.size, 0);
          assert.equal(retInternals(tree).root.children, null, 'fully pruned');
        },
      ),
      { numRuns: 500 },
    );
  });
});
