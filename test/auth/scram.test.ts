import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_SCRAM_MESSAGE, scramAuthentication, scramSha256 } from '../../src/auth/scram.js';
import {
  deriveScramCredential,
  SCRAM_SHA_256,
  type ScramCredential,
} from '../../src/auth/scram-credential.js';
import type { AuthConversation, AuthStep, ClientInfo } from '../../src/broker/hooks.js';
import { credentialWithSalt, ScramClient } from '../helpers/scram-client.js';

/**
 * The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) against the RFC's test vector and an
 * independent client: success, wrong passwords, unknown users, malformed messages, channel binding.
 */

const ITERATIONS = 4096;
const users = new Map<string, ScramCredential>([
  ['alice', await deriveScramCredential('wonderland', ITERATIONS)],
  ['a,b=c', await deriveScramCredential('commas', ITERATIONS)],
]);
const lookups: string[] = [];
const start = scramSha256(
  (name) => {
    lookups.push(name);
    return users.get(name);
  },
  { fakeIterations: ITERATIONS },
);

const text = (s: string): Buffer => Buffer.from(s);

/** Runs `client` through a fresh conversation; returns the final step and whether the client accepts it. */
async function exchange(
  client: ScramClient,
  conversation: AuthConversation = start(),
): Promise<{ final: AuthStep; verified: boolean }> {
  const challenge = await conversation.step(client.first());
  assert.equal(challenge.status, 'continue', JSON.stringify(challenge));
  const final = await conversation.step(
    client.final(challenge.status === 'continue' ? challenge.data : undefined),
  );
  return { final, verified: final.status === 'success' && client.verify(final.data) };
}

/** The failure every refused exchange answers with, unknown user included. */
const NOT_VERIFIED = { status: 'failure', refusal: 'not-authorized', reason: 'SCRAM proof did not verify' };

function assertMalformed(step: AuthStep, what: string): void {
  assert.equal(step.status, 'failure', `${what}: ${JSON.stringify(step)}`);
  if (step.status !== 'failure') return;
  assert.equal(step.refusal, 'not-authorized', what);
  assert.match(step.reason, /^malformed SCRAM message/, what);
}

describe('RFC 7677 section 3 test vector', () => {
  // user "user", password "pencil", and the RFC's nonces, salt and iteration count.
  const clientNonce = 'rOprNGfwEbeRWgbNEkqO';
  const serverNonce = '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
  const credential = credentialWithSalt('pencil', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096);
  const rfc = scramSha256((name) => (name === 'user' ? credential : undefined), { nonce: () => serverNonce });
  const clientFirst = 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO';
  const serverFirst =
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';
  const clientFinal =
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';
  const serverFinal = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=';

  test('the server answers the RFC messages with the RFC messages, byte for byte', async () => {
    const conversation = rfc();
    assert.deepEqual(await conversation.step(text(clientFirst)), {
      status: 'continue',
      data: text(serverFirst),
    });
    assert.deepEqual(await conversation.step(text(clientFinal)), {
      status: 'success',
      data: text(serverFinal),
      username: 'user',
    });
  });

  test('the test client produces the RFC client messages and accepts the RFC server-final', async () => {
    const client = new ScramClient('user', 'pencil', { nonce: clientNonce });
    assert.equal(client.first().toString(), clientFirst);
    assert.equal(client.final(text(serverFirst)).toString(), clientFinal);
    assert.ok(client.verify(text(serverFinal)));
    assert.ok(!client.verify(text('v=6sriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')), 'one bit off');
  });

  test('a proof with one bit flipped fails', async () => {
    const conversation = rfc();
    await conversation.step(text(clientFirst));
    const flipped = clientFinal.replace('p=dHzb', 'p=dHzc');
    assert.deepEqual(await conversation.step(text(flipped)), NOT_VERIFIED);
  });
});

describe('exchanges with the test client', () => {
  test('the right password succeeds, names the user, and the client verifies the server', async () => {
    const { final, verified } = await exchange(new ScramClient('alice', 'wonderland'));
    assert.equal(final.status, 'success');
    assert.equal(final.status === 'success' && final.username, 'alice');
    assert.ok(verified, 'the server-final-message proves the server holds the verifier');
  });

  test('a wrong password fails as not authorized, with no data for the client', async () => {
    const { final } = await exchange(new ScramClient('alice', 'Wonderland'));
    assert.deepEqual(final, NOT_VERIFIED);
  });

  test('a username with "," and "=" travels escaped (=2C, =3D) and is looked up unescaped', async () => {
    lookups.length = 0;
    const client = new ScramClient('a,b=c', 'commas');
    assert.match(client.first().toString(), /^n,,n=a=2Cb=3Dc,r=/);
    const { final, verified } = await exchange(client);
    assert.deepEqual(lookups, ['a,b=c']);
    assert.ok(verified);
    assert.equal(final.status === 'success' && final.username, 'a,b=c');
  });

  test('an authorization identity naming the user itself is accepted (and bound by c=)', async () => {
    const { verified } = await exchange(new ScramClient('alice', 'wonderland', { gs2Header: 'n,a=alice,' }));
    assert.ok(verified);
  });

  test('each exchange uses a fresh server nonce', async () => {
    const nonces = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const step = await start().step(new ScramClient('alice', 'x', { nonce: 'same' }).first());
      assert.equal(step.status, 'continue');
      if (step.status === 'continue') nonces.add(step.data.toString().split(',')[0]!);
    }
    assert.equal(nonces.size, 5);
  });

  test('the hook offers SCRAM-SHA-256 only', () => {
    const hook = scramAuthentication(() => undefined);
    const client = { clientId: 'c', protocol: 'mqtt', protocolVersion: 5, keepAlive: 0, connectedAt: 0 };
    assert.ok(hook(SCRAM_SHA_256, client as ClientInfo) !== undefined);
    assert.equal(hook('SCRAM-SHA-1', client as ClientInfo), undefined);
    assert.equal(hook('scram-sha-256', client as ClientInfo), undefined);
  });
});

describe('unknown users are indistinguishable from known ones until the proof fails', () => {
  const shape = /^r=([\x21-\x2b\x2d-\x7e]+),s=([A-Za-z0-9+/]+={0,2}),i=(\d+)$/;

  async function serverFirst(name: string, conversation = start()): Promise<RegExpMatchArray> {
    const step = await conversation.step(new ScramClient(name, 'pw', { nonce: 'abc' }).first());
    assert.equal(step.status, 'continue');
    const match = step.status === 'continue' ? step.data.toString().match(shape) : null;
    assert.ok(match, 'server-first-message has the RFC shape');
    return match;
  }

  test('same shape: a salt of the same length and the same iteration count', async () => {
    const known = await serverFirst('alice');
    const unknown = await serverFirst('mallory');
    assert.equal(Buffer.from(unknown[2]!, 'base64').length, Buffer.from(known[2]!, 'base64').length);
    assert.equal(unknown[3], known[3]);
    assert.ok(unknown[1]!.startsWith('abc') && unknown[1]!.length === known[1]!.length);
  });

  test("an unknown user's salt is the same every time (a random one would give it away)", async () => {
    assert.equal((await serverFirst('mallory'))[2], (await serverFirst('mallory'))[2]);
    assert.notEqual((await serverFirst('mallory'))[2], (await serverFirst('trudy'))[2]);
    const otherServer = scramSha256(() => undefined, { secret: Buffer.from('another secret') });
    assert.notEqual((await serverFirst('mallory'))[2], (await serverFirst('mallory', otherServer()))[2]);
  });

  test('the exchange fails at the proof, exactly as a wrong password does', async () => {
    const { final } = await exchange(new ScramClient('mallory', 'anything'));
    const wrong = await exchange(new ScramClient('alice', 'anything'));
    assert.deepEqual(final, NOT_VERIFIED);
    assert.deepEqual(final, wrong.final);
  });
});

describe('malformed messages fail the conversation', () => {
  const badFirsts: [string, Buffer | undefined][] = [
    ['no data', undefined],
    ['empty', text('')],
    ['too long', text(`n,,n=${'u'.repeat(MAX_SCRAM_MESSAGE)},r=abc`)],
    ['not UTF-8', Buffer.from([0x6e, 0x2c, 0x2c, 0x6e, 0x3d, 0xff, 0x2c, 0x72, 0x3d, 0x61])],
    ['no gs2 header', text('n=alice,r=abc')],
    ['unknown channel binding flag', text('x,,n=alice,r=abc')],
    ['attributes out of order', text('n,,r=abc,n=alice')],
    ['a bare "=" in the username', text('n,,n=al=ice,r=abc')],
    ['an unknown escape', text('n,,n=al=2Dice,r=abc')],
    ['an empty username', text('n,,n=,r=abc')],
    ['an empty nonce', text('n,,n=alice,r=')],
    ['a nonce with a space', text('n,,n=alice,r=a bc')],
    ['a mandatory extension', text('n,,m=ext,n=alice,r=abc')],
    ['an authorization identity of another user', text('n,a=root,n=alice,r=abc')],
    ['an extension that is not attr=value', text('n,,n=alice,r=abc,junk')],
  ];
  for (const [what, data] of badFirsts) {
    test(`client-first-message: ${what}`, async () => {
      const conversation = start();
      assertMalformed(await conversation.step(data), what);
      // The conversation is over: even a good message now fails.
      assert.equal(
        (await conversation.step(new ScramClient('alice', 'wonderland').first())).status,
        'failure',
      );
    });
  }

  /** A client-final-message built by `edit` from the correct one. */
  async function finalEdited(edit: (correct: string) => string): Promise<AuthStep> {
    const client = new ScramClient('alice', 'wonderland');
    const conversation = start();
    const challenge = await conversation.step(client.first());
    assert.equal(challenge.status, 'continue');
    const correct = client.final(challenge.status === 'continue' ? challenge.data : undefined).toString();
    return conversation.step(text(edit(correct)));
  }

  const badFinals: [string, (correct: string) => string][] = [
    ['no proof', (m) => m.slice(0, m.indexOf(',p='))],
    ['proof not base64', (m) => m.replace(/p=.*$/, 'p=not*base64')],
    ['proof of 31 bytes', (m) => m.replace(/p=.*$/, `p=${Buffer.alloc(31).toString('base64')}`)],
    ['channel binding of another gs2 header', (m) => m.replace('c=biws', 'c=eSws')],
    ['channel binding missing', (m) => m.replace('c=biws,', '')],
    ['the client nonce alone', (m) => m.replace(/r=[^,]*/, 'r=x')],
    ['nonce and binding swapped', (m) => m.replace(/^(c=[^,]*),(r=[^,]*)/, '$2,$1')],
  ];
  for (const [what, edit] of badFinals) {
    test(`client-final-message: ${what}`, async () => {
      assertMalformed(await finalEdited(edit), what);
    });
  }

  test('no message after the exchange ended, even after success', async () => {
    const client = new ScramClient('alice', 'wonderland');
    const conversation = start();
    const { verified } = await exchange(client, conversation);
    assert.ok(verified);
    assertMalformed(await conversation.step(client.first()), 'a third message');
  });
});

describe('channel binding', () => {
  test('"p=" (the client wants channel binding) is refused: no SCRAM-SHA-256-PLUS is offered', async () => {
    const step = await start().step(text('p=tls-server-end-point,,n=alice,r=abc'));
    assert.equal(step.status, 'failure');
    assert.match(step.status === 'failure' ? step.reason : '', /channel binding/);
  });

  test('"y" (the client could, but thinks the server cannot) is accepted, and c= must repeat it', async () => {
    const { verified } = await exchange(new ScramClient('alice', 'wonderland', { gs2Header: 'y,,' }));
    assert.ok(verified);
  });
});
