export interface BarPoint {
  /** Axis label (a date). */
  label: string;
  value: number;
}

interface Props {
  points: readonly BarPoint[];
  formatValue: (n: number) => string;
  /** What the chart shows, for screen readers. */
  caption: string;
  height?: number;
  /** Hide axis labels (the small overview chart). */
  compact?: boolean;
}

/**
 * A hand-rolled SVG bar chart (a chart library would triple the bundle). Bars are placed in
 * percentages so the chart fills any width without scaling its text.
 */
export function BarChart({ points, formatValue, caption, height = 180, compact = false }: Props) {
  const max = Math.max(0, ...points.map((p) => p.value));
  const n = Math.max(points.length, 1);
  const slot = 100 / n;
  const gap = n > 40 ? 0.15 : 0.2;
  const total = points.reduce((s, p) => s + p.value, 0);
  const summary = `${caption}: ${points.length} periods, total ${formatValue(total)}, highest ${formatValue(max)}`;
  const ticks = compact ? (points.length > 1 ? [0, points.length - 1] : [0]) : labelIndexes(points.length);
  return (
    <figure className={`chart${compact ? ' chart-compact' : ''}`}>
      {!compact && (
        <div className="chart-scale muted" aria-hidden="true">
          <span>{formatValue(max)}</span>
          <span>{formatValue(0)}</span>
        </div>
      )}
      <svg
        className="chart-svg"
        width="100%"
        height={height}
        role="img"
        aria-label={summary}
        preserveAspectRatio="none"
      >
        <line x1="0" x2="100%" y1={height - 0.5} y2={height - 0.5} className="chart-axis" />
        {!compact && <line x1="0" x2="100%" y1={0.5} y2={0.5} className="chart-grid" />}
        {points.map((p, i) => {
          const h = max > 0 ? Math.max(p.value > 0 ? 2 : 0, (p.value / max) * (height - 4)) : 0;
          return (
            <rect
              key={`${p.label}-${i}`}
              className="chart-bar"
              x={`${i * slot + (slot * gap) / 2}%`}
              width={`${slot * (1 - gap)}%`}
              y={height - h}
              height={h}
              rx={2}
            >
              <title>{`${p.label}: ${formatValue(p.value)}`}</title>
            </rect>
          );
        })}
      </svg>
      {ticks.length > 0 && (
        <div className="chart-labels muted" aria-hidden="true">
          {ticks.map((i) => {
            const at = (i + 0.5) * slot;
            // Labels near an edge are aligned to it instead of centred, so they are not cut.
            const shift = at < 8 ? '0' : at > 92 ? '-100%' : '-50%';
            return (
              <span key={i} style={{ left: `${at < 8 ? 0 : at > 92 ? 100 : at}%`, transform: `translateX(${shift})` }}>
                {points[i]?.label}
              </span>
            );
          })}
        </div>
      )}
      <figcaption className="visually-hidden">{summary}</figcaption>
    </figure>
  );
}

/** First, last and a few evenly spaced labels in between. */
function labelIndexes(count: number): number[] {
  if (count === 0) return [];
  if (count <= 7) return Array.from({ length: count }, (_, i) => i);
  const step = (count - 1) / 4;
  return Array.from(new Set([0, 1, 2, 3, 4].map((k) => Math.round(k * step))));
}
