/**
 * A small parser of the Prometheus text exposition format (0.0.4), for the tests: it checks
 * the structure (HELP and TYPE before samples, known types, label syntax and escapes) and
 * returns every sample, so tests compare values rather than text.
 */

/** One sample line: `name{labels} value`. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** What an exposition holds: HELP and TYPE per metric family, and the samples. */
export interface Exposition {
  readonly help: ReadonlyMap<string, string>;
  readonly types: ReadonlyMap<string, string>;
  readonly samples: readonly Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** Parses `text`; throws naming the line on anything malformed. */
export function parseExposition(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const help = new Map<string, string>();
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const [index, line] of text.slice(0, -1).split('\n').entries()) {
    const where = `line ${index + 1}: ${JSON.stringify(line)}`;
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (comment !== null) {
      const [, kind, name, rest] = comment as unknown as [string, string, string, string];
      if (kind === 'HELP') help.set(name, unescapeHelp(rest));
      else {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest))
          throw new Error(`${where}: unknown type`);
        if (types.has(name)) throw new Error(`${where}: second TYPE`);
        types.set(name, rest);
      }
      continue;
    }
    if (line.startsWith('#') || line === '') throw new Error(`${where}: unexpected`);
    samples.push(parseSample(line, where));
  }
  for (const sample of samples) {
    const family = familyOf(sample.name, types);
    if (family === undefined) throw new Error(`sample ${sample.name} has no TYPE`);
  }
  return { help, types, samples };
}

function parseSample(line: string, where: string): Sample {
  const name = NAME.exec(line)?.[0];
  if (name === undefined) throw new Error(`${where}: no metric name`);
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith('{')) {
    rest = rest.slice(1);
    while (!rest.startsWith('}')) {
      const label = LABEL.exec(rest)?.[0];
      if (label === undefined || rest[label.length] !== '=' || rest[label.length + 1] !== '"')
        throw new Error(`${where}: bad label`);
      rest = rest.slice(label.length + 2);
      let value = '';
      for (;;) {
        const c = rest[0];
        if (c === undefined) throw new Error(`${where}: unterminated label value`);
        rest = rest.slice(1);
        if (c === '"') break;
        if (c === '\\') {
          const e = rest[0];
          rest = rest.slice(1);
          if (e === 'n') value += '\n';
          else if (e === '\\' || e === '"') value += e;
          else throw new Error(`${where}: bad escape \\${e}`);
        } else if (c === '\n') throw new Error(`${where}: raw newline in label value`);
        else value += c;
      }
      labels[label] = value;
      if (rest.startsWith(',')) rest = rest.slice(1);
      else if (!rest.startsWith('}')) throw new Error(`${where}: expected , or }`);
    }
    rest = rest.slice(1);
  }
  const valueText = /^ (\S+)$/.exec(rest)?.[1];
  if (valueText === undefined) throw new Error(`${where}: expected one space and a value`);
  const value =
    valueText === '+Inf'
      ? Number.POSITIVE_INFINITY
      : valueText === '-Inf'
        ? Number.NEGATIVE_INFINITY
        : Number(valueText);
  if (Number.isNaN(value) && valueText !== 'NaN') throw new Error(`${where}: bad value`);
  return { name, labels, value };
}

function unescapeHelp(text: string): string {
  return text.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
}

/** The family a sample belongs to: its own name, or a histogram's for `_bucket`/`_sum`/`_count`. */
function familyOf(name: string, types: ReadonlyMap<string, string>): string | undefined {
  if (types.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return types.get(base) === 'histogram' ? base : undefined;
}

/** The value of the sample `name` whose labels include `labels`; undefined if none. */
export function sampleValue(
  exposition: Exposition,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  const found = exposition.samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return found?.value;
}

/** The sum of every `name` sample matching `labels` (0 if none). */
export function sumOf(
  exposition: Exposition,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  return exposition.samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((total, s) => total + s.value, 0);
}
