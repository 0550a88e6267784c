/**
 * A small metrics registry and the Prometheus text exposition format (version 0.0.4):
 * counters, gauges and histograms with labels. Values are plain numbers held in maps keyed
 * by label values, so updating one costs a map lookup; `collect` hooks let gauges be read
 * from the broker's state at scrape time instead of being kept up to date on every change.
 */

/** The content type of the text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Label values by label name, e.g. `{ qos: '1' }`. */
export type Labels = Readonly<Record<string, string | number>>;

/** What every metric kind shares. */
export interface MetricOptions {
  /** `[a-zA-Z_:][a-zA-Z0-9_:]*`; counters end in `_total` by convention. */
  readonly name: string;
  readonly help: string;
  /** Label names, in the order they are written. */
  readonly labelNames?: readonly string[];
}

/** Default histogram buckets, in seconds: from a tenth of a millisecond to ten seconds. */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** One metric of the registry; `lines` renders its samples. */
abstract class Metric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  /** Runs before each exposition: where a metric reads its values from elsewhere. */
  collect: (() => void) | undefined;

  constructor(options: MetricOptions) {
    if (!METRIC_NAME.test(options.name)) throw new Error(`invalid metric name '${options.name}'`);
    for (const label of options.labelNames ?? []) {
      // `le` is the histogram's own; `__` names are reserved by Prometheus.
      if (!LABEL_NAME.test(label) || label.startsWith('__') || label === 'le')
        throw new Error(`invalid label name '${label}' of metric ${options.name}`);
    }
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames ?? [];
  }

  /** The map key of a label set: the values in label-name order. */
  protected key(labels: Labels | undefined): string {
    if (this.labelNames.length === 0) return '';
    // One label (most of them): its value is the key, with no array to build per update.
    if (this.labelNames.length === 1) {
      const value = labels?.[this.labelNames[0]!];
      if (value === undefined) throw new Error(`metric ${this.name} needs label '${this.labelNames[0]}'`);
      return String(value);
    }
    const values: string[] = [];
    for (const name of this.labelNames) {
      const value = labels?.[name];
      if (value === undefined) throw new Error(`metric ${this.name} needs label '${name}'`);
      values.push(String(value));
    }
    return values.join('\u0000');
  }

  /** `{a="x",b="y"}` for a stored key (plus `extra`, e.g. a histogram's `le`), or '' when empty. */
  protected labelText(key: string, extra?: string): string {
    const parts: string[] = [];
    if (this.labelNames.length > 0) {
      const values = key.split('\u0000');
      this.labelNames.forEach((name, i) => {
        parts.push(`${name}="${escapeLabelValue(values[i] ?? '')}"`);
      });
    }
    if (extra !== undefined) parts.push(extra);
    return parts.length === 0 ? '' : `{${parts.join(',')}}`;
  }

  abstract lines(): string[];
}

/** A value that only goes up (or back to zero at restart): messages, bytes, failures. */
export class Counter extends Metric {
  readonly type = 'counter' as const;
  private readonly values = new Map<string, number>();

  constructor(options: MetricOptions) {
    super(options);
    if (this.labelNames.length === 0) this.values.set('', 0);
  }

  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0)) throw new Error(`counter ${this.name} cannot go down (by ${by})`);
    const key = this.key(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }

  /** Sets the running total from a source that counts by itself (a plain number elsewhere). */
  set(labels: Labels | undefined, total: number): void {
    this.values.set(this.key(labels), total);
  }

  get(labels?: Labels): number {
    return this.values.get(this.key(labels)) ?? 0;
  }

  lines(): string[] {
    return [...this.values].map(([key, value]) => `${this.name}${this.labelText(key)} ${formatValue(value)}`);
  }
}

/** A value that goes up and down: connections, queue depths, memory. */
export class Gauge extends Metric {
  readonly type = 'gauge' as const;
  private readonly values = new Map<string, number>();

  constructor(options: MetricOptions) {
    super(options);
    if (this.labelNames.length === 0) this.values.set('', 0);
  }

  set(labels: Labels | undefined, value: number): void {
    this.values.set(this.key(labels), value);
  }

  inc(labels?: Labels, by = 1): void {
    const key = this.key(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }

  dec(labels?: Labels, by = 1): void {
    this.inc(labels, -by);
  }

  get(labels?: Labels): number {
    return this.values.get(this.key(labels)) ?? 0;
  }

  /** Forgets every label set (before a collect hook sets the current ones). */
  reset(): void {
    this.values.clear();
    if (this.labelNames.length === 0) this.values.set('', 0);
  }

  lines(): string[] {
    return [...this.values].map(([key, value]) => `${this.name}${this.labelText(key)} ${formatValue(value)}`);
  }
}

/** Histogram options: bucket upper bounds, ascending (`+Inf` is added). */
export interface HistogramOptions extends MetricOptions {
  readonly buckets?: readonly number[];
}

interface HistogramSeries {
  /** Non-cumulative counts per bucket; the last one is `+Inf`. */
  readonly counts: number[];
  sum: number;
  count: number;
}

/** Observations sorted into buckets: latencies. Written with cumulative `_bucket`, `_sum`, `_count`. */
export class Histogram extends Metric {
  readonly type = 'histogram' as const;
  readonly buckets: readonly number[];
  private readonly series = new Map<string, HistogramSeries>();

  constructor(options: HistogramOptions) {
    super(options);
    const buckets = [...(options.buckets ?? DEFAULT_BUCKETS)];
    if (buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!)))
      throw new Error(`buckets of ${options.name} must be finite and ascending`);
    this.buckets = buckets;
    if (this.labelNames.length === 0) this.series.set('', this.emptySeries());
  }

  observe(value: number, labels?: Labels): void {
    const key = this.key(labels);
    let series = this.series.get(key);
    if (series === undefined) {
      series = this.emptySeries();
      this.series.set(key, series);
    }
    let i = 0;
    while (i < this.buckets.length && value > this.buckets[i]!) i++;
    series.counts[i]!++;
    series.sum += value;
    series.count++;
  }

  /** The number of observations so far (of one label set). */
  count(labels?: Labels): number {
    return this.series.get(this.key(labels))?.count ?? 0;
  }

  lines(): string[] {
    const out: string[] = [];
    for (const [key, series] of this.series) {
      let cumulative = 0;
      this.buckets.forEach((bound, i) => {
        cumulative += series.counts[i]!;
        out.push(`${this.name}_bucket${this.labelText(key, `le="${formatValue(bound)}"`)} ${cumulative}`);
      });
      out.push(`${this.name}_bucket${this.labelText(key, 'le="+Inf"')} ${series.count}`);
      out.push(`${this.name}_sum${this.labelText(key)} ${formatValue(series.sum)}`);
      out.push(`${this.name}_count${this.labelText(key)} ${series.count}`);
    }
    return out;
  }

  private emptySeries(): HistogramSeries {
    return { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }
}

/** A set of metrics written together. */
export class Registry {
  private readonly metrics = new Map<string, Metric>();

  counter(options: MetricOptions): Counter {
    return this.add(new Counter(options));
  }

  gauge(options: MetricOptions): Gauge {
    return this.add(new Gauge(options));
  }

  histogram(options: HistogramOptions): Histogram {
    return this.add(new Histogram(options));
  }

  /** Every metric in the text exposition format: `# HELP`, `# TYPE`, then its samples. */
  exposition(): string {
    for (const metric of this.metrics.values()) metric.collect?.();
    const out: string[] = [];
    for (const metric of this.metrics.values()) {
      out.push(`# HELP ${metric.name} ${escapeHelp(metric.help)}`);
      out.push(`# TYPE ${metric.name} ${metric.type}`);
      out.push(...metric.lines());
    }
    return `${out.join('\n')}\n`;
  }

  private add<M extends Metric>(metric: M): M {
    if (this.metrics.has(metric.name)) throw new Error(`metric ${metric.name} registered twice`);
    this.metrics.set(metric.name, metric);
    return metric;
  }
}

/** HELP text: backslash and newline are escaped. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Label values: backslash, double quote and newline are escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Numbers as Prometheus reads them: `+Inf`, `-Inf`, `NaN`, else JavaScript's shortest form. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}
