import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  escapeLabelValue,
  formatValue,
  PROMETHEUS_CONTENT_TYPE,
  Registry,
} from '../../src/observe/metrics.js';
import { parseExposition, sampleValue } from './exposition.js';

/** The metrics registry and its text exposition, read back with an independent parser. */

describe('exposition format', () => {
  test('HELP and TYPE precede the samples of each metric, in registration order', () => {
    const r = new Registry();
    r.counter({ name: 'a_total', help: 'first' }).inc();
    r.gauge({ name: 'b', help: 'second' }).set(undefined, 7);
    const text = r.exposition();
    assert.equal(
      text,
      '# HELP a_total first\n# TYPE a_total counter\na_total 1\n# HELP b second\n# TYPE b gauge\nb 7\n',
    );
    const parsed = parseExposition(text);
    assert.equal(parsed.types.get('a_total'), 'counter');
    assert.equal(parsed.help.get('b'), 'second');
    assert.match(PROMETHEUS_CONTENT_TYPE, /^text\/plain; version=0\.0\.4/);
  });

  test('labelled counters keep one series per label set, in label-name order', () => {
    const r = new Registry();
    const c = r.counter({ name: 'msgs_total', help: 'messages', labelNames: ['qos', 'dir'] });
    c.inc({ qos: 1, dir: 'in' });
    c.inc({ dir: 'in', qos: 1 }, 4);
    c.inc({ qos: 0, dir: 'out' }, 2);
    const parsed = parseExposition(r.exposition());
    assert.equal(sampleValue(parsed, 'msgs_total', { qos: '1', dir: 'in' }), 5);
    assert.equal(sampleValue(parsed, 'msgs_total', { qos: '0', dir: 'out' }), 2);
    assert.ok(r.exposition().includes('msgs_total{qos="1",dir="in"} 5\n'));
    assert.throws(() => c.inc({ qos: 1 }), /needs label 'dir'/);
    assert.throws(() => c.inc({ qos: 1, dir: 'in' }, -1), /cannot go down/);
  });

  test('label values escape backslash, double quote and newline; HELP escapes backslash and newline', () => {
    const r = new Registry();
    const tricky = 'mqtt://h:1/"a"\\b\nc';
    r.gauge({ name: 'g', help: 'two\nlines \\ "quoted"', labelNames: ['listener'] }).set(
      { listener: tricky },
      1,
    );
    const text = r.exposition();
    assert.ok(text.includes('# HELP g two\\nlines \\\\ "quoted"\n'), text);
    assert.ok(text.includes('g{listener="mqtt://h:1/\\"a\\"\\\\b\\nc"} 1\n'), text);
    const parsed = parseExposition(text);
    assert.equal(parsed.samples[0]?.labels['listener'], tricky);
    assert.equal(parsed.help.get('g'), 'two\nlines \\ "quoted"');
    assert.equal(escapeLabelValue('plain'), 'plain');
  });

  test('special values are written as Prometheus reads them', () => {
    assert.equal(formatValue(Number.POSITIVE_INFINITY), '+Inf');
    assert.equal(formatValue(Number.NEGATIVE_INFINITY), '-Inf');
    assert.equal(formatValue(Number.NaN), 'NaN');
    assert.equal(formatValue(0.25), '0.25');
    assert.equal(formatValue(1e21), '1e+21');
  });

  test('histograms write cumulative buckets with le, +Inf, _sum and _count', () => {
    const r = new Registry();
    const h = r.histogram({ name: 'lat_seconds', help: 'latency', buckets: [0.1, 0.5, 1] });
    for (const v of [0.05, 0.1, 0.3, 0.7, 2, 5]) h.observe(v);
    const parsed = parseExposition(r.exposition());
    assert.equal(parsed.types.get('lat_seconds'), 'histogram');
    const bucket = (le: string): number | undefined => sampleValue(parsed, 'lat_seconds_bucket', { le });
    // A bucket counts observations less than or equal to its bound.
    assert.equal(bucket('0.1'), 2);
    assert.equal(bucket('0.5'), 3);
    assert.equal(bucket('1'), 4);
    assert.equal(bucket('+Inf'), 6);
    assert.equal(sampleValue(parsed, 'lat_seconds_count'), 6);
    assert.ok(Math.abs((sampleValue(parsed, 'lat_seconds_sum') ?? 0) - 8.15) < 1e-9);
    assert.equal(h.count(), 6);
  });

  test('labelled histograms keep le last, after their own labels', () => {
    const r = new Registry();
    const h = r.histogram({ name: 'h', help: 'x', labelNames: ['op'], buckets: [1] });
    h.observe(0.5, { op: 'commit' });
    const text = r.exposition();
    assert.ok(text.includes('h_bucket{op="commit",le="1"} 1\n'), text);
    assert.ok(text.includes('h_bucket{op="commit",le="+Inf"} 1\n'), text);
    assert.ok(text.includes('h_count{op="commit"} 1\n'), text);
    parseExposition(text);
  });

  test('bad names, labels and buckets are refused when the metric is made', () => {
    const r = new Registry();
    assert.throws(() => r.counter({ name: '1abc', help: 'x' }), /invalid metric name/);
    assert.throws(() => r.counter({ name: 'a-b', help: 'x' }), /invalid metric name/);
    assert.throws(() => r.gauge({ name: 'g', help: 'x', labelNames: ['__x'] }), /invalid label name/);
    assert.throws(() => r.histogram({ name: 'h', help: 'x', labelNames: ['le'] }), /invalid label name/);
    assert.throws(() => r.histogram({ name: 'h2', help: 'x', buckets: [1, 1] }), /ascending/);
    r.counter({ name: 'dup', help: 'x' });
    assert.throws(() => r.counter({ name: 'dup', help: 'x' }), /registered twice/);
  });

  test('collect hooks run before each exposition; gauges reset between them', () => {
    const r = new Registry();
    const g = r.gauge({ name: 'conns', help: 'x', labelNames: ['listener'] });
    let current: Record<string, number> = { a: 1, b: 2 };
    g.collect = () => {
      g.reset();
      for (const [listener, n] of Object.entries(current)) g.set({ listener }, n);
    };
    assert.equal(sampleValue(parseExposition(r.exposition()), 'conns', { listener: 'b' }), 2);
    current = { a: 3 };
    const parsed = parseExposition(r.exposition());
    assert.equal(sampleValue(parsed, 'conns', { listener: 'a' }), 3);
    assert.equal(sampleValue(parsed, 'conns', { listener: 'b' }), undefined);
  });

  test('the test parser rejects what Prometheus would', () => {
    assert.throws(() => parseExposition('x 1\n'), /no TYPE/);
    assert.throws(() => parseExposition('# TYPE x counter\nx{a="b} 1\n'), /unterminated|expected/);
    assert.throws(() => parseExposition('# TYPE x counter\nx{a="\\t"} 1\n'), /bad escape/);
    assert.throws(() => parseExposition('# TYPE x counter\nx 1'), /newline/);
  });
});
