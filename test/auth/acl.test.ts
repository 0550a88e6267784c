import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Acl, grantAuthorizer } from '../../src/auth/acl.js';
import { AclSyntaxError, parseAclFile } from '../../src/auth/acl-file.js';
import { contains, intersect, type Levels, matches, overlaps } from '../../src/auth/topic-filter.js';
import type { AclSubject, SubscribeDecision } from '../../src/auth/types.js';
import { refMatches } from '../helpers/topic-reference.js';

/**
 * The ACL: the Mosquitto-syntax parser line by line (errors name file:line), decision tables for
 * publish and subscribe (allow, deny, per-message guard), patterns, the anonymous section, deny
 * precedence, `$share`, `$SYS` against `#`, credential grants and superusers, reload, and
 * property tests comparing the filter algebra and the decisions with a brute-force reference
 * over small topic spaces.
 */

// ---- the parser ---------------------------------------------------------------------------------

describe('parseAclFile reads Mosquitto acl_file syntax', () => {
  test('comments, blank lines, the anonymous section, user sections and patterns', () => {
    const file = parseAclFile(
      [
        '# a comment',
        '   # an indented comment',
        '',
        '   ',
        'topic read public/#',
        'topic anon/default',
        'pattern write devices/%c/status',
        'user alice',
        'topic readwrite alice/#',
        'topic deny alice/secret',
        'pattern read users/%u/#',
        'user bob smith',
        'topic write a topic/with spaces',
        'user alice',
        'topic #',
      ].join('\n'),
      'test.acl',
    );
    assert.equal(file.source, 'test.acl');
    assert.deepEqual(
      file.anonymous.map((r) => [r.access, r.filter, r.origin]),
      [
        ['read', 'public/#', 'test.acl:5'],
        ['readwrite', 'anon/default', 'test.acl:6'],
      ],
    );
    assert.deepEqual(
      file.users.get('alice')?.map((r) => [r.access, r.filter]),
      [
        ['readwrite', 'alice/#'],
        ['deny', 'alice/secret'],
        ['readwrite', '#'], // a second `user alice` section adds to the first; `topic #` is no comment
      ],
    );
    assert.deepEqual(
      file.users.get('bob smith')?.map((r) => [r.access, r.filter]),
      [['write', 'a topic/with spaces']],
    );
    // Patterns apply to everyone, wherever they stand.
    assert.deepEqual(
      file.patterns.map((r) => [r.access, r.filter, r.origin]),
      [
        ['write', 'devices/%c/status', 'test.acl:7'],
        ['read', 'users/%u/#', 'test.acl:11'],
      ],
    );
  });

  test('CRLF line endings, tabs and trailing blanks', () => {
    const file = parseAclFile('user\tcarol  \r\ntopic\tread\tx/+  \r\n', 'crlf.acl');
    assert.deepEqual(
      file.users.get('carol')?.map((r) => [r.access, r.filter]),
      [['read', 'x/+']],
    );
  });

  const errors: [string, string, number, RegExp][] = [
    [
      'unknown keyword',
      'topic a\nallow a/b',
      2,
      /expected 'user', 'topic', 'pattern' or a '#' comment, found 'allow'/,
    ],
    ['user without a name', '\nuser', 2, /expected a username after 'user'/],
    [
      'topic without a filter',
      'topic',
      1,
      /expected \[read\|write\|readwrite\|deny\] and a topic filter after 'topic'/,
    ],
    ['access word without a filter', '# c\n\ntopic read', 3, /expected a topic filter after 'topic read'/],
    ['pattern without a filter', 'pattern deny  ', 1, /expected a topic filter after 'pattern deny'/],
    [
      '# not last',
      'user u\ntopic read a/#/b',
      2,
      /invalid topic filter 'a\/#\/b': '#' must be the last level/,
    ],
    ['# inside a level', 'topic a#', 1, /'#' must be a whole level/],
    ['+ inside a level', 'pattern read a/b+/c', 1, /'\+' must be a whole level/],
  ];
  for (const [what, text, line, message] of errors) {
    test(`error: ${what} names file:line`, () => {
      assert.throws(
        () => parseAclFile(text, 'bad.acl'),
        (error: unknown) => {
          assert.ok(error instanceof AclSyntaxError);
          assert.equal(error.code, 'ACL_SYNTAX');
          assert.equal(error.line, line);
          assert.equal(error.source, 'bad.acl');
          assert.ok(error.message.startsWith(`bad.acl:${line}: `), error.message);
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }
});

// ---- decisions ------------------------------------------------------------------------------------

const FILE = `
# anonymous clients
topic read public/#
topic read $SYS/broker/uptime

# everyone
pattern write devices/%c/status
pattern readwrite users/%u/#
pattern deny users/%u/locked/#

user alice
topic readwrite alice/#
topic deny alice/secret/#
topic read sensors/+/temperature
topic write cmd

user bob
topic read sensors/#
topic deny sensors/lab/#

user root
topic readwrite #

user monitor
topic read $SYS/#
`;

const acl = Acl.fromText(FILE, 'table.acl');
const anon: AclSubject = { clientId: 'anon-1' };
const alice: AclSubject = { clientId: 'alice-1', username: 'alice' };
const bob: AclSubject = { clientId: 'bob-1', username: 'bob' };
const root: AclSubject = { clientId: 'root-1', username: 'root' };
const monitor: AclSubject = { clientId: 'mon-1', username: 'monitor' };
const stranger: AclSubject = { clientId: 'str-1', username: 'stranger' };

describe('canPublish: a write rule matches and no deny rule does', () => {
  const table: [string, AclSubject, string, boolean][] = [
    ['user section grant', alice, 'alice/x/y', true],
    ['# grants the parent level', alice, 'alice', true],
    ['deny wins over a grant', alice, 'alice/secret/plan', false],
    ['deny covers its parent level', alice, 'alice/secret', false],
    ['read is not write', alice, 'sensors/a/temperature', false],
    ['write rule', alice, 'cmd', true],
    ['not granted is denied', alice, 'other', false],
    ['anonymous rules do not apply to users', alice, 'public/x', false],
    ['anonymous read is not write', anon, 'public/x', false],
    ['%c pattern for a user', alice, 'devices/alice-1/status', true],
    ['%c pattern is per client id', alice, 'devices/bob-1/status', false],
    ['%c pattern for an anonymous client', anon, 'devices/anon-1/status', true],
    ['%u pattern', bob, 'users/bob/inbox', true],
    ['%u pattern, another user', bob, 'users/alice/inbox', false],
    ['%u deny pattern', bob, 'users/bob/locked/x', false],
    ['%u never matches an anonymous client', anon, 'users//x', false],
    ['no section, patterns only', stranger, 'users/stranger/a', true],
    ['no section, nothing else', stranger, 'anything', false],
    ['# grants everything', root, 'a/b/c', true],
    ['# does not grant $SYS (MQTT-4.7.2-1)', root, '$SYS/broker/load', false],
  ];
  for (const [what, subject, topic, expected] of table) {
    test(`${what}: ${subject.username ?? '(anonymous)'} → ${topic}: ${expected}`, () => {
      assert.equal(acl.canPublish(subject, topic), expected);
      // Asked again (answered from the cache), the same.
      assert.equal(acl.canPublish(subject, topic), expected);
    });
  }
});

/** A guard with the topics it must allow and refuse. */
type Expected = boolean | { allows: string[]; refuses: string[] };

function assertDecision(decision: SubscribeDecision, expected: Expected): void {
  if (typeof expected === 'boolean') {
    assert.equal(decision, expected);
    return;
  }
  assert.equal(typeof decision, 'function', 'a guard');
  const guard = decision as (topic: string) => boolean;
  for (const topic of expected.allows) assert.equal(guard(topic), true, `guard allows ${topic}`);
  for (const topic of expected.refuses) assert.equal(guard(topic), false, `guard refuses ${topic}`);
}

describe('canSubscribe: refuse, allow outright, or allow with a guard', () => {
  const table: [string, AclSubject, string, Expected][] = [
    ['within one read rule', alice, 'alice/x/#', true],
    ['exact topic', alice, 'alice/x', true],
    ['no read rule overlaps', alice, 'other/#', false],
    ['write-only rule gives no read', alice, 'cmd', false],
    ['+ rule contains a literal', alice, 'sensors/kitchen/temperature', true],
    ['+ rule contains +', alice, 'sensors/+/temperature', true],
    [
      'partly readable: a wider filter',
      alice,
      'sensors/#',
      { allows: ['sensors/k/temperature'], refuses: ['sensors/k/humidity', 'sensors', 'sensors/k'] },
    ],
    [
      'a deny inside the filter',
      alice,
      'alice/#',
      { allows: ['alice', 'alice/x', 'alice/secretive'], refuses: ['alice/secret', 'alice/secret/a/b'] },
    ],
    ['the filter inside a deny', alice, 'alice/secret/#', false],
    ['the filter is the deny parent', alice, 'alice/secret', false],
    [
      'several read rules',
      alice,
      '#',
      {
        allows: ['alice/a', 'sensors/x/temperature', 'users/alice/q', 'alice'],
        refuses: ['alice/secret/x', 'sensors/x/y', 'bob/x', 'users/alice/locked/z', 'public/x'],
      },
    ],
    ['%u pattern read', bob, 'users/bob/#', { allows: ['users/bob/a'], refuses: ['users/bob/locked/a'] }],
    ['%u pattern, another user', bob, 'users/alice/#', false],
    ['$share is stripped', bob, '$share/g/sensors/a/#', true],
    ['$share is stripped: denied', bob, '$share/g/sensors/lab/#', false],
    ['$share with a guard', bob, '$share/g/sensors/#', { allows: ['sensors/a'], refuses: ['sensors/lab/1'] }],
    ['anonymous section', anon, 'public/#', true],
    ['anonymous section, outside it', anon, 'private/#', false],
    ['# rule: everything but $ topics', root, '$share/all/a/#', true],
    [
      '# rule, with the deny pattern for everyone',
      root,
      '#',
      { allows: ['a/b', 'users/root/x'], refuses: ['users/root/locked', 'users/root/locked/x'] },
    ],
    ['# rule does not grant $SYS (MQTT-4.7.2-1)', root, '$SYS/#', false],
    ['+/# rule neither', root, '$SYS/broker/uptime', false],
    ['an explicit $SYS grant', monitor, '$SYS/#', true],
    ['anonymous, one $SYS topic', anon, '$SYS/broker/uptime', true],
    [
      'anonymous, all of $SYS: partly',
      anon,
      '$SYS/#',
      { allows: ['$SYS/broker/uptime'], refuses: ['$SYS/x'] },
    ],
    ['a wildcard-first filter never reaches $SYS', monitor, '+/broker/uptime', false],
    ['an invalid filter', alice, 'alice/#/x', false],
  ];
  for (const [what, subject, filter, expected] of table) {
    test(`${what}: ${subject.username ?? '(anonymous)'} ⊳ ${filter}`, () => {
      assertDecision(acl.canSubscribe(subject, filter), expected);
    });
  }
});

describe('patterns with unsafe names, client ids and caching', () => {
  test('a username or client id with +, # or / gets no grant from a pattern', () => {
    const rules = Acl.fromText('pattern readwrite users/%u/#\npattern write dev/%c', 'p.acl');
    for (const username of ['+', '#', 'a/b']) {
      const subject = { clientId: 'c', username };
      assert.equal(rules.canSubscribe(subject, 'users/#'), false, username);
      assert.equal(rules.canPublish(subject, 'users/x/y'), false, username);
      assert.equal(rules.canPublish(subject, 'users/a/b'), false, username);
    }
    assert.equal(rules.canPublish({ clientId: '+' }, 'dev/x'), false);
    assert.equal(rules.canPublish({ clientId: 'x' }, 'dev/x'), true);
  });

  test('a deny pattern still applies to such a name, denying at least what it names', () => {
    const rules = Acl.fromText('pattern read #\npattern deny secret/%u/#', 'p.acl');
    assert.equal(rules.canSubscribe({ clientId: 'c', username: '+' }, 'secret/x/y'), false);
    assert.equal(rules.canSubscribe({ clientId: 'c', username: 'a/b' }, 'secret/a/b/c'), false);
    assert.equal(rules.canSubscribe({ clientId: 'c', username: 'a' }, 'secret/b/c'), true);
  });

  test('rule sets are per user, and per client when a pattern names %c', () => {
    const rules = Acl.fromText('user u\ntopic read shared/#\npattern write own/%c', 'c.acl');
    const one = { clientId: 'one', username: 'u' };
    const two = { clientId: 'two', username: 'u' };
    assert.equal(rules.canPublish(one, 'own/one'), true);
    assert.equal(rules.canPublish(two, 'own/one'), false);
    assert.equal(rules.canPublish(two, 'own/two'), true);
    assert.equal(rules.canSubscribe(two, 'shared/x'), true);
  });

  test('publish decisions stay right beyond the decision cache', () => {
    const rules = Acl.fromText('user u\ntopic write even/#\ntopic deny even/7', 'c.acl');
    const subject = { clientId: 'c', username: 'u' };
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 1000; i++) {
        const topic = i % 2 === 0 ? `even/${i % 10}/${i}` : `odd/${i}`;
        assert.equal(rules.canPublish(subject, topic), i % 2 === 0, topic);
      }
    }
    assert.equal(rules.canPublish(subject, 'even/7'), false);
  });
});

describe('superusers and credential grants', () => {
  test('a superuser identity passes everything, $SYS included', () => {
    const admin: AclSubject = {
      clientId: 'x',
      username: 'nobody',
      identity: { provider: 'p', superuser: true },
    };
    assert.equal(acl.canPublish(admin, '$SYS/x'), true);
    assert.equal(acl.canSubscribe(admin, '#'), true);
    assert.equal(acl.canSubscribe(admin, '$SYS/#'), true);
  });

  const jwtAlice: AclSubject = {
    clientId: 'alice-1',
    username: 'alice',
    identity: {
      provider: 'jwt',
      username: 'alice',
      acl: { publish: ['jwt/out/#'], subscribe: ['jwt/in/+', 'bad/#/x'] },
    },
  };

  test('a grant replaces the file: its own rules, no user section, no patterns', () => {
    assert.equal(acl.canPublish(jwtAlice, 'jwt/out/1'), true);
    assert.equal(acl.canPublish(jwtAlice, 'alice/x'), false);
    assert.equal(acl.canPublish(jwtAlice, 'devices/alice-1/status'), false);
    assert.equal(acl.canPublish(jwtAlice, 'jwt/in/1'), false, 'subscribe filters grant read only');
    assert.equal(acl.canSubscribe(jwtAlice, 'jwt/in/+'), true);
    assert.equal(acl.canSubscribe(jwtAlice, 'jwt/out/#'), false, 'publish filters grant write only');
    assert.equal(acl.canSubscribe(jwtAlice, 'alice/#'), false);
    assertDecision(acl.canSubscribe(jwtAlice, 'jwt/#'), {
      allows: ['jwt/in/a'],
      refuses: ['jwt/out/a', 'jwt/in/a/b'],
    });
    // An invalid filter in a claim grants nothing.
    assert.equal(acl.canSubscribe(jwtAlice, 'bad/#'), false);
  });

  test('grantAuthorizer: grants enforced; without a grant allowed, or denied when told', () => {
    const open = grantAuthorizer();
    const closed = grantAuthorizer({ withoutGrant: 'deny' });
    const plain: AclSubject = { clientId: 'p', username: 'p', identity: { provider: 'password-file' } };
    assert.equal(open.canPublish(plain, 'any/thing'), true);
    assert.equal(open.canSubscribe(plain, '#'), true);
    assert.equal(closed.canPublish(plain, 'any/thing'), false);
    assert.equal(closed.canSubscribe(plain, '#'), false);
    for (const authorizer of [open, closed]) {
      assert.equal(authorizer.canPublish(jwtAlice, 'jwt/out/x'), true);
      assert.equal(authorizer.canPublish(jwtAlice, 'alice/x'), false);
      assert.equal(authorizer.canSubscribe(jwtAlice, '$share/g/jwt/in/q'), true);
      const root = { clientId: 'r', identity: { provider: 'p', superuser: true } };
      assert.equal(authorizer.canPublish(root, 'x'), true);
    }
  });
});

describe('reload', () => {
  test('re-reads the file; a bad file keeps the old rules and says where it is wrong', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cicada-acl-'));
    try {
      const path = join(dir, 'acl');
      await writeFile(path, 'user u\ntopic write one\n');
      const rules = await Acl.load(path);
      assert.equal(rules.source, path);
      const u = { clientId: 'c', username: 'u' };
      assert.equal(rules.canPublish(u, 'one'), true);
      assert.equal(rules.canPublish(u, 'two'), false);

      await writeFile(path, 'user u\ntopic write two\n');
      await rules.reload();
      assert.equal(rules.canPublish(u, 'one'), false);
      assert.equal(rules.canPublish(u, 'two'), true);

      await writeFile(path, 'user u\ntopic write three\nbogus line\n');
      await assert.rejects(rules.reload(), (error: Error) => {
        assert.match(error.message, /previous rules stay in force/);
        assert.ok(error.message.includes(`${path}:3:`), error.message);
        return true;
      });
      assert.equal(rules.canPublish(u, 'two'), true);
      assert.equal(rules.canPublish(u, 'three'), false);

      await rm(path);
      await assert.rejects(rules.reload(), /previous rules stay in force.*ENOENT/);
      assert.equal(rules.canPublish(u, 'two'), true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('load reports a syntax error with file:line, and a missing file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cicada-acl-'));
    try {
      const path = join(dir, 'acl');
      await writeFile(path, '\n\ntopic read a/#/b\n');
      await assert.rejects(
        Acl.load(path),
        (error: unknown) => error instanceof AclSyntaxError && error.line === 3,
      );
      await assert.rejects(Acl.load(join(dir, 'missing')), /ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('rules from text stay as they are on reload', async () => {
    const rules = Acl.fromText('topic write x', 'text');
    await rules.reload();
    assert.equal(rules.canPublish({ clientId: 'c' }, 'x'), true);
  });
});

// ---- properties against a brute-force reference ---------------------------------------------------

/**
 * Every topic of 1 to 4 levels over the filters' literal levels plus a fresh one ('c'): enough for
 * a witness of every overlap and every non-containment of filters up to 3 levels.
 */
const TOPIC_LEVELS = ['', 'a', 'b', '$s', 'c'];
const UNIVERSE: string[] = (() => {
  const out: string[][] = [];
  let layer: string[][] = [[]];
  for (let depth = 1; depth <= 4; depth++) {
    layer = layer.flatMap((prefix) => TOPIC_LEVELS.map((level) => [...prefix, level]));
    out.push(...layer);
  }
  return out.map((levels) => levels.join('/')).filter((topic) => topic !== '');
})();

const filterArb = fc
  .tuple(fc.array(fc.constantFrom('', 'a', 'b', '$s', '+'), { maxLength: 3 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
  .filter((filter) => filter !== '' && filter.split('/').length <= 3);

const split = (filter: string): Levels => filter.split('/');

describe('properties: the filter algebra against brute force', () => {
  test('matches, contains, overlaps and intersect agree with the reference on every topic', () => {
    fc.assert(
      fc.property(filterArb, filterArb, (a, b) => {
        const inA = UNIVERSE.filter((t) => refMatches(a, t));
        const inB = UNIVERSE.filter((t) => refMatches(b, t));
        for (const t of UNIVERSE) assert.equal(matches(split(a), split(t)), refMatches(a, t), `${a} ~ ${t}`);
        const both = inA.filter((t) => refMatches(b, t));
        assert.equal(
          contains(split(a), split(b)),
          inB.every((t) => refMatches(a, t)),
          `${a} ⊇ ${b}`,
        );
        assert.equal(overlaps(split(a), split(b)), both.length > 0, `${a} ∩ ${b} ≠ ∅`);
        const common = intersect(split(a), split(b));
        const inCommon = common === undefined ? [] : UNIVERSE.filter((t) => refMatches(common.join('/'), t));
        assert.deepEqual(inCommon, both, `${a} ∩ ${b} = ${common?.join('/')}`);
      }),
      { numRuns: 400 },
    );
  });
});

const accessArb = fc.constantFrom('read', 'write', 'readwrite', 'deny');
const rulesArb = fc.array(fc.tuple(accessArb, filterArb), { minLength: 0, maxLength: 5 });

describe('properties: decisions against brute force', () => {
  test('publish and subscribe decisions agree with the rules on every topic', () => {
    fc.assert(
      fc.property(rulesArb, filterArb, fc.boolean(), (rules, filter, shared) => {
        const text = ['user u', ...rules.map(([access, f]) => `topic ${access} ${f}`)].join('\n');
        const subject = { clientId: 'c', username: 'u' };
        const under = Acl.fromText(text, 'prop.acl');
        const has = (access: string[], t: string): boolean =>
          rules.some(([a, f]) => access.includes(a) && refMatches(f, t));
        const denied = (t: string): boolean => has(['deny'], t);
        const readable = (t: string): boolean => has(['read', 'readwrite'], t) && !denied(t);
        const writable = (t: string): boolean => has(['write', 'readwrite'], t) && !denied(t);

        for (const t of UNIVERSE) assert.equal(under.canPublish(subject, t), writable(t), `publish ${t}`);

        const decision = under.canSubscribe(subject, shared ? `$share/g/${filter}` : filter);
        const delivered = UNIVERSE.filter((t) => refMatches(filter, t));
        if (decision === false) {
          for (const t of delivered) assert.equal(readable(t), false, `refused, yet ${t} is readable`);
        } else if (decision === true) {
          for (const t of delivered) assert.equal(readable(t), true, `allowed, yet ${t} is not readable`);
        } else {
          for (const t of delivered) assert.equal(decision(t), readable(t), `guard on ${t}`);
        }
        // Refused only when no read rule overlaps, or the overlap is denied; allowed outright when
        // one read rule contains the filter and no deny overlaps it.
        const readRules = rules.filter(([a]) => a === 'read' || a === 'readwrite');
        if (readRules.some(([, f]) => UNIVERSE.every((t) => !refMatches(filter, t) || refMatches(f, t)))) {
          if (!rules.some(([a, f]) => a === 'deny' && delivered.some((t) => refMatches(f, t)))) {
            assert.equal(decision, true, 'contained and nothing denied: allowed outright');
          }
        }
        if (delivered.some(readable)) assert.notEqual(decision, false);
      }),
      { numRuns: 400 },
    );
  });
});
