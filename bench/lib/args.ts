/** Command-line parsing shared by the benchmarks. */

/**
 * Walks `argv`, calling `each` once per flag with `value()`, which takes the flag's value:
 * the text after `=` (`--rounds=3`) or else the next argument (`--rounds 3`).
 */
export function eachFlag(
  argv: string[],
  each: (flag: string, value: () => string, arg: string) => void,
): void {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? (arg.split('=', 2) as [string, string]) : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    each(flag, value, arg);
  }
}

/** `parse(process.argv.slice(2))`; on an error, prints its message and exits with code 2. */
export function parseOrExit<T>(parse: (argv: string[]) => T): T {
  try {
    return parse(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
}

/** The options every broker benchmark (bench/load.ts, bench/persist.ts) has. */
export interface RunOptions {
  quick: boolean;
  rounds: number;
  durationMs: number;
  warmupMs: number;
  only: string[];
  json: string | undefined;
}

/** A flag's value, read as what the flag wants. */
export interface FlagValue {
  text(): string;
  /** A number from `lo` (to `hi`, if given). */
  num(lo: number, hi?: number): number;
  /** A comma-separated list, trimmed, without empty items. */
  list(): string[];
}

/** The flags of RunOptions' figures that --quick changes. */
const QUICK_FLAGS = { rounds: '--rounds', durationMs: '--duration', warmupMs: '--warmup' } as const;

/**
 * Parses a broker benchmark's command line into `o`: the flags of RunOptions (--quick,
 * --rounds N, --duration S, --warmup S, --only A,B, --json FILE), --help (prints `help`),
 * and whatever `own` takes: it returns false for a flag it does not know, which is an error.
 * With --quick, the figures in `quick` replace those whose flag was not given. Returns the
 * flags given.
 */
export function parseFlags(
  argv: string[],
  o: RunOptions,
  help: string,
  quick: Partial<Pick<RunOptions, keyof typeof QUICK_FLAGS>>,
  own: (flag: string, value: FlagValue) => boolean,
): Set<string> {
  const given = new Set<string>();
  eachFlag(argv, (flag, text, arg) => {
    const value: FlagValue = {
      text,
      num(lo, hi) {
        const v = Number(text());
        if (hi === undefined) {
          if (!Number.isFinite(v) || v < lo) throw new Error(`${flag}: expected a number >= ${lo}`);
        } else if (!Number.isFinite(v) || v < lo || v > hi) {
          throw new Error(`${flag}: expected a number from ${lo} to ${hi}`);
        }
        return v;
      },
      list: () =>
        text()
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== ''),
    };
    given.add(flag);
    switch (flag) {
      case '--quick':
        o.quick = true;
        break;
      case '--rounds':
        o.rounds = Math.round(value.num(1));
        break;
      case '--duration':
        o.durationMs = value.num(0.1) * 1000;
        break;
      case '--warmup':
        o.warmupMs = value.num(0) * 1000;
        break;
      case '--only':
        o.only = value.list();
        break;
      case '--json':
        o.json = text();
        break;
      case '--help':
      case '-h':
        process.stdout.write(help);
        process.exit(0);
        break;
      default:
        if (!own(flag, value)) throw new Error(`unknown option ${arg} (see --help)`);
    }
  });
  if (o.quick) {
    for (const [key, flag] of Object.entries(QUICK_FLAGS) as [keyof typeof QUICK_FLAGS, string][]) {
      const v = quick[key];
      if (v !== undefined && !given.has(flag)) o[key] = v;
    }
  }
  return given;
}

/** The brokers of `all` that `names` (the value of --brokers) names, in `all`'s order. */
export function selectBrokers<T extends string>(names: string[], all: readonly T[]): T[] {
  for (const n of names) {
    if (!all.includes(n as T)) throw new Error(`--brokers: unknown broker ${n}`);
  }
  return all.filter((b) => names.includes(b));
}
