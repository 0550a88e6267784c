/** Table cells and the --json file, shared by bench/load.ts and bench/persist.ts. */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { formatMs, formatRate, formatRatio, max, median, min } from '../stats.js';

/** The median of `xs` with its [min–max] range (or the one value), each formatted by `f`. */
export const fmtRange = (xs: number[], f: (x: number) => string): string =>
  xs.length === 0 ? '–' : xs.length === 1 ? f(xs[0]!) : `${f(median(xs))} [${f(min(xs))}–${f(max(xs))}]`;
export const rateF = (x: number): string => (Number.isFinite(x) ? formatRate(x).replace(' ', '') : '–');
export const us = (x: number): string =>
  Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toPrecision(3)) : '–';
export const pct = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(0)}%` : '–');
export const ms = (x: number): string => (Number.isFinite(x) ? formatMs(x).replace(' ', '') : '–');

/** Per-round ratios: their median with the [min–max] range, or the one ratio. */
export function ratioCell(xs: number[]): string {
  if (xs.length === 0) return '–';
  if (xs.length === 1) return formatRatio(xs[0]!);
  return `${formatRatio(median(xs))} [${min(xs).toFixed(2)}–${max(xs).toFixed(2)}]`;
}

/** Writes the options and every measurement to `path` (--json), when given. */
export function writeJson(path: string | undefined, options: unknown, results: unknown[]): void {
  if (path === undefined) return;
  writeFileSync(
    path,
    `${JSON.stringify({ options, node: process.version, cpus: cpus().length, results }, null, 2)}\n`,
  );
  console.log(`\nwrote ${path}`);
}
