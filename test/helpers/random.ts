/**
 * Seeded randomness for the fuzz tests (test/codec/fuzz.test.ts, test/mqtt/hostile.test.ts):
 * every choice comes from one generator, so a seed repeats a whole run.
 */

/** mulberry32: small, fast and good enough to drive mutations reproducibly. */
export function prng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The seed in environment variable `name` (to replay a run), or else a new one. */
export function seedFrom(name: string): number {
  return Number(process.env[name] ?? Date.now() % 1_000_000);
}

export interface Random {
  /** A number in [0, 1). */
  random(): number;
  /** An integer from 0 to n - 1. */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  /** `n` random bytes. */
  bytes(n: number): Buffer;
  /** A copy of `input` with 1 to 4 random mutations: bits flipped, bytes set, spans inserted, deleted, truncated or repeated. */
  mutate(input: Buffer): Buffer;
}

export function seeded(seed: number): Random {
  const random = prng(seed);
  const int = (n: number): number => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));
  const mutate = (input: Buffer): Buffer => {
    let out = Buffer.from(input);
    const rounds = 1 + int(4);
    for (let r = 0; r < rounds; r++) {
      const at = int(Math.max(out.length, 1));
      switch (int(6)) {
        case 0: // flip a bit
          if (out.length) out[at] = out[at]! ^ (1 << int(8));
          break;
        case 1: // set a byte to an interesting value
          if (out.length) out[at] = pick([0x00, 0x01, 0x7f, 0x80, 0xff, 0x23, 0x2b, 0xc0, 0xed]);
          break;
        case 2: // insert random bytes
          out = Buffer.concat([out.subarray(0, at), bytes(1 + int(4)), out.subarray(at)]);
          break;
        case 3: // delete a span
          out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + int(4))]);
          break;
        case 4: // truncate
          out = out.subarray(0, at);
          break;
        default: // duplicate a span
          out = Buffer.concat([out, out.subarray(at, at + int(16))]);
      }
    }
    return out;
  };
  return { random, int, pick, bytes, mutate };
}
