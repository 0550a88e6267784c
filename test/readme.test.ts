import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { configReference } from '../src/config/schema.js';

/** The README is part of the feature: its example runs and its reference matches the schema. */

const root = fileURLToPath(new URL('../../', import.meta.url));
const readme = await readFile(`${root}README.md`, 'utf8');

function section(heading: string): string {
  const start = readme.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `README has a '## ${heading}' section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

describe('README', () => {
  test('the embedding example runs as written (on a free port) and exits cleanly', async () => {
    const code = /```js\n([\s\S]*?)```/.exec(section('Embedding'))?.[1];
    assert.ok(code, 'the Embedding section has a js example');
    // Self-reference by package name needs the file inside the package.
    const file = `${root}.readme-example-${process.pid}.mjs`;
    await writeFile(file, code.replace("'mqtt://127.0.0.1:1883'", "'mqtt://127.0.0.1:0'"));
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [file], { timeout: 30_000 });
      assert.match(stdout, /listening on port \d+/);
      assert.match(stdout, /published greetings app/);
    } finally {
      await rm(file, { force: true });
    }
  });

  test('the configuration table lists every key of the config schema, and nothing else', () => {
    const table = section('Configuration');
    const listed = [...table.matchAll(/^\| `([\w.[\]]+)` \|/gm)].map((m) => m[1]);
    const keys = configReference()
      .filter((r) => r.expected !== 'a mapping')
      .map((r) => r.key);
    assert.deepEqual(listed.sort(), keys.sort());
  });
});
