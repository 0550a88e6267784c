// A time-series line chart drawn on a <canvas>: a fixed window of samples, y axis from 0 to
// a rounded maximum, a legend. Redrawn on every sample and when the canvas changes size.

/** A step of 1, 2 or 5 times a power of ten at or above `value`. */
function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function shortNumber(value) {
  if (value >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (value >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  return `${+value.toFixed(value < 10 ? 1 : 0)}`;
}

/** A line chart of `series` (each `{ label, color }`, color a CSS custom property name). */
export class LineChart {
  constructor(canvas, series, { capacity = 150, windowLabel = '5 min' } = {}) {
    this.canvas = canvas;
    this.series = series;
    this.capacity = capacity;
    this.windowLabel = windowLabel;
    this.samples = [];
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  /** Adds one sample: a value per series. */
  push(values) {
    this.samples.push(values);
    if (this.samples.length > this.capacity) this.samples.shift();
    this.draw();
  }

  draw() {
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (width === 0 || height === 0) return;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const context = canvas.getContext('2d');
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    const style = getComputedStyle(canvas);
    const muted = style.getPropertyValue('--muted').trim() || '#666';
    const line = style.getPropertyValue('--line').trim() || '#ddd';
    const font = `12px ${style.fontFamily}`;
    context.font = font;

    const left = 44;
    const right = 8;
    const top = 24;
    const bottom = 20;
    const plotWidth = width - left - right;
    const plotHeight = height - top - bottom;
    let max = 0;
    for (const sample of this.samples) for (const value of sample) max = Math.max(max, value);
    // Small counts get whole-number ticks (0..4) rather than fractions of one.
    const ceiling = max <= 4 ? 4 : niceCeiling(max);

    context.textBaseline = 'middle';
    context.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = top + plotHeight - (plotHeight * i) / 4;
      context.strokeStyle = line;
      context.beginPath();
      context.moveTo(left, Math.round(y) + 0.5);
      context.lineTo(left + plotWidth, Math.round(y) + 0.5);
      context.stroke();
      context.fillStyle = muted;
      context.textAlign = 'right';
      context.fillText(shortNumber((ceiling * i) / 4), left - 6, y);
    }
    context.textBaseline = 'alphabetic';
    context.textAlign = 'left';
    context.fillText(`−${this.windowLabel}`, left, height - 4);
    context.textAlign = 'right';
    context.fillText('now', left + plotWidth, height - 4);

    const step = plotWidth / (this.capacity - 1);
    const offset = this.capacity - this.samples.length;
    let legendX = left;
    this.series.forEach((series, index) => {
      const color = style.getPropertyValue(series.color).trim() || '#2f6b4a';
      context.strokeStyle = color;
      context.lineWidth = 2;
      context.lineJoin = 'round';
      context.beginPath();
      this.samples.forEach((sample, i) => {
        const x = left + (offset + i) * step;
        const y = top + plotHeight - (plotHeight * sample[index]) / ceiling;
        if (i === 0) context.moveTo(x, y);
        else context.lineTo(x, y);
      });
      context.stroke();
      // The newest point as a dot, so that a single sample (or a flat line on the axis) shows.
      if (this.samples.length > 0) {
        const x = left + (this.capacity - 1) * step;
        const y = top + plotHeight - (plotHeight * this.samples.at(-1)[index]) / ceiling;
        context.fillStyle = color;
        context.beginPath();
        context.arc(x, y, 3, 0, 2 * Math.PI);
        context.fill();
      }
      const latest = this.samples.at(-1)?.[index];
      const label = latest === undefined ? series.label : `${series.label}: ${shortNumber(latest)}`;
      context.fillStyle = color;
      context.fillRect(legendX, 6, 10, 10);
      context.fillStyle = muted;
      context.textAlign = 'left';
      context.textBaseline = 'middle';
      context.fillText(label, legendX + 14, 11);
      legendX += context.measureText(label).width + 32;
    });
  }
}
