// The operator console (/ops, raregen/ops/views.py): moves focus to a confirmation step
// when HTMX swaps one in, and draws the charts of /ops/charts with uPlot from
// /ops/api/charts. No inline script or style: uPlot sizes its elements through the CSSOM,
// which the site's Content-Security-Policy allows.
import uPlot from 'uplot';

document.body.addEventListener('htmx:afterSwap', (event) => {
  const target = event.detail && event.detail.target;
  if (!target || target.id !== 'ops-confirm') return;
  const heading = target.querySelector('h2');
  if (heading) {
    heading.focus();
    heading.scrollIntoView({ block: 'start' });
  }
});

const COLORS = ['#1f9d4c', '#f5c518', '#e0392b', '#6fb7ff', '#c78bff', '#ff9f43', '#cbb994'];
const AXIS = { stroke: '#cbb994', grid: { stroke: '#3d3122', width: 1 }, ticks: { stroke: '#3d3122' } };

function seriesOf(names) {
  return [{}, ...names.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false }))];
}

function chartOptions(el, names, unit, data) {
  const last = data.t[data.t.length - 1] + data.bucketSeconds;
  return {
    width: Math.max(200, el.clientWidth),
    height: 220,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'), // the page says UTC
    series: seriesOf(names),
    // the whole window on the x axis, even with one sample; y from 0 (1 when all empty)
    scales: {
      x: { time: true, range: () => [data.t[0], last] },
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    axes: [{ ...AXIS, space: 90 }, { ...AXIS, label: unit, size: 56 }],
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
  };
}

// name -> (data) => [series names, unit, uPlot data]
const CHARTS = {
  throughput: (d) => [['accepted', 'sent', 'confirmed'], 'per minute', [d.t, d.accepted, d.sent, d.confirmed]],
  'sent-latency': (d) => [['p50', 'p99'], 'seconds', [d.t, d.sentP50, d.sentP99]],
  'confirmed-latency': (d) => [['p50', 'p99'], 'seconds', [d.t, d.confirmedP50, d.confirmedP99]],
  pool: (d) => {
    // no sample yet: one point at the window's end keeps the axes drawn
    const t = d.poolT.length ? d.poolT : [d.t[d.t.length - 1]];
    const fill = (v) => (d.poolT.length ? v : [null]);
    return [['available', 'reserved', 'dirty'], 'UTXOs', [t, fill(d.poolAvailable), fill(d.poolReserved), fill(d.poolDirty)]];
  },
  failures: (d) => {
    const codes = Object.keys(d.failures);
    if (!codes.length) return [['none'], 'jobs', [d.t, d.t.map(() => 0)]];
    return [codes, 'jobs', [d.t, ...codes.map((c) => d.failures[c])]];
  },
};

const plots = new Map();

function draw(data) {
  for (const el of document.querySelectorAll('.ops-chart[data-chart]')) {
    const [names, unit, series] = CHARTS[el.dataset.chart](data);
    const old = plots.get(el);
    if (old) old.destroy();
    el.replaceChildren();
    plots.set(el, new uPlot(chartOptions(el, names, unit, data), series, el));
  }
  const totals = document.querySelector('[data-role="failure-totals"]');
  if (totals) {
    totals.replaceChildren(
      ...Object.entries(data.failureTotals).map(([code, n]) => {
        const li = document.createElement('li');
        li.className = 'badge badge-failed';
        li.textContent = `${code} ${n}`;
        return li;
      }),
    );
  }
}

async function load(windowName) {
  const root = document.querySelector('.ops-charts');
  const status = document.getElementById('charts-status');
  const url = `${root.dataset.api}?window=${encodeURIComponent(windowName)}`;
  try {
    const resp = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const data = await resp.json();
    draw(data);
    status.textContent = `Last ${windowName}, ${data.bucketSeconds / 60}-minute buckets (UTC).`;
    root.dataset.loaded = windowName;
  } catch (err) {
    status.textContent = `The chart data could not be loaded (${err.message}).`;
  }
}

function setupCharts() {
  if (!document.querySelector('.ops-charts')) return;
  let current = 'hour';
  for (const button of document.querySelectorAll('[data-window]')) {
    button.addEventListener('click', () => {
      current = button.dataset.window;
      for (const b of document.querySelectorAll('[data-window]')) {
        const on = b === button;
        b.setAttribute('aria-pressed', on ? 'true' : 'false');
        b.classList.toggle('button-ghost', !on);
      }
      load(current);
    });
  }
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const [el, plot] of plots) plot.setSize({ width: Math.max(200, el.clientWidth), height: 220 });
    }, 150);
  });
  load(current);
}

setupCharts();
