// A small dependency-free SVG bar chart writer for tests/bench/RESULTS.md: grouped bars (one
// group per load or route, one bar per path) or stacked bars (one bar per path, one segment per
// process). Only what the bench's charts need: axis with round ticks, labels, a legend.

const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#9c755f'];
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * @param {{title: string, unit: string, stacked?: boolean,
 *          groups: {label: string, bars: {label: string, value: number}[]}[]}} chart
 * @returns {string} an SVG document
 */
export function barChart({ title, unit, groups, stacked = false }) {
  const series = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.label)))];
  const color = (label) => COLORS[series.indexOf(label) % COLORS.length];
  const finite = (v) => (Number.isFinite(v) ? v : 0);
  const top = niceMax(Math.max(...groups.map((g) => (stacked ? g.bars.reduce((a, b) => a + finite(b.value), 0) : Math.max(0, ...g.bars.map((b) => finite(b.value)))))));
  const W = 760, left = 70, right = 20, plotTop = 40, plotH = 260, legendH = 22 * Math.ceil(series.length / 3);
  const H = plotTop + plotH + 50 + legendH;
  const plotW = W - left - right;
  const gw = plotW / groups.length;
  const y = (v) => plotTop + plotH - (plotH * v) / top;
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`];
  for (let i = 0; i <= 5; i++) {
    const v = (top * i) / 5;
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`);
  }
  out.push(`<text transform="translate(16 ${plotTop + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(unit)}</text>`);
  groups.forEach((g, gi) => {
    const x0 = left + gi * gw;
    if (stacked) {
      const bw = Math.min(80, gw * 0.6);
      let acc = 0;
      for (const b of g.bars) {
        const v = finite(b.value);
        out.push(`<rect x="${x0 + (gw - bw) / 2}" y="${y(acc + v)}" width="${bw}" height="${y(acc) - y(acc + v)}" fill="${color(b.label)}"><title>${esc(`${b.label}: ${fmt(v)} ${unit}`)}</title></rect>`);
        acc += v;
      }
      out.push(`<text x="${x0 + gw / 2}" y="${y(acc) - 4}" text-anchor="middle">${fmt(acc)}</text>`);
    } else {
      const bw = Math.min(60, (gw * 0.8) / Math.max(1, g.bars.length));
      const start = x0 + (gw - bw * g.bars.length) / 2;
      g.bars.forEach((b, bi) => {
        const v = finite(b.value);
        out.push(`<rect x="${start + bi * bw}" y="${y(v)}" width="${bw - 2}" height="${plotTop + plotH - y(v)}" fill="${color(b.label)}"><title>${esc(`${b.label}: ${fmt(v)} ${unit}`)}</title></rect>`,
          `<text x="${start + bi * bw + (bw - 2) / 2}" y="${y(v) - 4}" text-anchor="middle" font-size="10">${Number.isFinite(b.value) ? fmt(v) : 'n/a'}</text>`);
      });
    }
    out.push(`<text x="${x0 + gw / 2}" y="${plotTop + plotH + 18}" text-anchor="middle">${esc(g.label)}</text>`);
  });
  out.push(`<line x1="${left}" x2="${W - right}" y1="${plotTop + plotH}" y2="${plotTop + plotH}" stroke="#333"/>`);
  series.forEach((s, i) => {
    const lx = left + (i % 3) * (plotW / 3), ly = plotTop + plotH + 40 + 22 * Math.floor(i / 3);
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${color(s)}"/>`, `<text x="${lx + 18}" y="${ly}">${esc(s)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
