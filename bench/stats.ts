/**
 * Small statistics and formatting helpers shared by the benchmarks. Nothing here times
 * anything: callers collect samples (one per round) and summarise them.
 */

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  mean: number;
}

/** Median of the samples (mean of the middle two for an even count); NaN when empty. */
export function median(samples: readonly number[]): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function min(samples: readonly number[]): number {
  return samples.length === 0 ? Number.NaN : Math.min(...samples);
}

export function max(samples: readonly number[]): number {
  return samples.length === 0 ? Number.NaN : Math.max(...samples);
}

export function mean(samples: readonly number[]): number {
  if (samples.length === 0) return Number.NaN;
  let sum = 0;
  for (const s of samples) sum += s;
  return sum / samples.length;
}

export function summarize(samples: readonly number[]): Summary {
  return {
    n: samples.length,
    median: median(samples),
    min: min(samples),
    max: max(samples),
    mean: mean(samples),
  };
}

/** Element-wise ratios a[i] / b[i], e.g. per-round speed-ups of one implementation over another. */
export function ratios(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.min(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(a[i]! / b[i]!);
  return out;
}

/** Nanoseconds (from process.hrtime.bigint differences) to seconds. */
export function nsToSeconds(ns: bigint): number {
  return Number(ns) / 1e9;
}

/** A rate with an SI suffix: `1.23 M`, `456 k`, `78.9`. Append the unit yourself (`/s`, `ops/s`). */
export function formatRate(perSecond: number, digits = 3): string {
  if (!Number.isFinite(perSecond)) return String(perSecond);
  const abs = Math.abs(perSecond);
  if (abs >= 1e9) return `${(perSecond / 1e9).toPrecision(digits)} G`;
  if (abs >= 1e6) return `${(perSecond / 1e6).toPrecision(digits)} M`;
  if (abs >= 1e3) return `${(perSecond / 1e3).toPrecision(digits)} k`;
  return perSecond.toPrecision(digits);
}

/** Bytes with a binary suffix: `512 B`, `64.0 KiB`, `1.50 MiB`. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toPrecision(3)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toPrecision(3)} KiB`;
  return `${bytes} B`;
}

/** A duration in milliseconds, with a sensible number of decimals. */
export function formatMs(ms: number): string {
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 1) return `${ms.toFixed(2)} ms`;
  return `${(ms * 1000).toFixed(1)} µs`;
}

/** A ratio such as a speed-up: `3.12x`. */
export function formatRatio(ratio: number, decimals = 2): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(decimals)}x` : String(ratio);
}

/** The spread of per-round ratios: `2.95–3.30x`. */
export function formatRatioRange(samples: readonly number[], decimals = 2): string {
  return `${min(samples).toFixed(decimals)}–${max(samples).toFixed(decimals)}x`;
}

export type Align = 'left' | 'right';

/**
 * Renders rows as a plain-text table with a header rule. Columns are left-aligned unless
 * `align` says otherwise. Widths count UTF-16 code units, good enough for the ASCII and
 * the odd en dash these benchmarks print.
 */
export function renderTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  align: Align[] = [],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (align[i] === 'right' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}
