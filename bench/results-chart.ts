/**
 * The SVG chart of `npm run bench`: one horizontal bar per headline ratio, on a log scale (ratios
 * here run from 0.3x to 30x), with its target as a tick; green when met, red when not, grey when
 * its bench did not run on a quiet machine.
 */
export interface ChartBar {
  what: string;
  value: number;
  /** As in the table: ">= 0.8x" or "<= 1.5x". */
  target: string;
  met: boolean;
  quiet: boolean;
}

const LABEL_WIDTH = 430;
const PLOT_WIDTH = 420;
const ROW = 22;
const TOP = 34;
const MIN = 0.1;
const MAX = 100;

const escapeXml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
/** x of a ratio on the log axis, clamped to the plot. */
const at = (value: number) => LABEL_WIDTH + (PLOT_WIDTH * (Math.log10(Math.min(MAX, Math.max(MIN, value))) - Math.log10(MIN))) / (Math.log10(MAX) - Math.log10(MIN));

export function benchmarkChart(bars: ChartBar[]): string {
  const height = TOP + bars.length * ROW + 30;
  const width = LABEL_WIDTH + PLOT_WIDTH + 70;
  const grid = [0.1, 0.3, 1, 3, 10, 30, 100].map((tick) => {
    const x = at(tick).toFixed(1);
    return `<line x1="${x}" y1="${TOP - 6}" x2="${x}" y2="${height - 24}" stroke="#ddd"/><text x="${x}" y="${height - 10}" text-anchor="middle">${tick}x</text>`;
  });
  const rows = bars.map((bar, index) => {
    const y = TOP + index * ROW;
    const colour = !bar.quiet ? "#9e9e9e" : bar.met ? "#2e7d32" : "#c62828";
    const targetValue = Number(/[\d.]+/.exec(bar.target)?.[0] ?? Number.NaN);
    const tick = Number.isFinite(targetValue)
      ? `<line x1="${at(targetValue).toFixed(1)}" y1="${y - 2}" x2="${at(targetValue).toFixed(1)}" y2="${y + ROW - 6}" stroke="#000" stroke-width="2"/>`
      : "";
    return [
      `<text x="${LABEL_WIDTH - 8}" y="${y + 12}" text-anchor="end">${escapeXml(bar.what)}</text>`,
      `<rect x="${at(MIN)}" y="${y}" width="${(at(bar.value) - at(MIN)).toFixed(1)}" height="${ROW - 8}" fill="${colour}"/>`,
      tick,
      `<text x="${(at(bar.value) + 4).toFixed(1)}" y="${y + 12}">${bar.value.toFixed(2)}x</text>`,
    ].join("");
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="8" y="18" font-weight="bold">Headline ratios (log scale); black tick: target; green met, red not met, grey: not a quiet machine</text>
${grid.join("\n")}
${rows.join("\n")}
</svg>
`;
}
