// The bureau's supervision dashboard: ECharts (the platform's own copy) drawing the
// JSON of /console/supervision/data.
import * as echarts from '/static/vendor/echarts/echarts.esm.min.mjs';

const STATUS_ZH = {
  submitted: '待答复', approved: '同意', partly_approved: '部分同意', refused: '不同意',
  withdrawn: '已撤回', expired: '已过期', appealed: '已提请审定',
};
const MODE_ZH = { system: '系统对接', fep: '前置机', query: '联机查询', download: '批量下载' };

function bar(el, names, values, unit) {
  const chart = echarts.init(el, null, { renderer: 'canvas' });
  chart.setOption({
    animation: false,
    textStyle: { fontFamily: 'Noto Sans CJK SC, sans-serif' },
    tooltip: {},
    grid: { left: 48, right: 16, top: 24, bottom: 48 },
    xAxis: { type: 'category', data: names, axisLabel: { interval: 0 } },
    yAxis: { type: 'value', name: unit, minInterval: 1 },
    series: [{ type: 'bar', data: values, itemStyle: { color: '#1f5fa8' } }],
  });
  window.addEventListener('resize', () => chart.resize());
  return chart;
}

async function draw() {
  const box = document.getElementById('chart-requests');
  const response = await fetch(box.dataset.source, {
    credentials: 'same-origin', headers: { Accept: 'application/json' },
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.description || `HTTP ${response.status}`);
  const statuses = Object.keys(STATUS_ZH);
  bar(box, statuses.map((s) => `${STATUS_ZH[s]}\n${s}`),
    statuses.map((s) => data.requests_by_status[s] || 0), '件 / requests');
  const modes = Object.keys(MODE_ZH);
  bar(document.getElementById('chart-deliveries'), modes.map((m) => `${MODE_ZH[m]}\n${m}`),
    modes.map((m) => (data.deliveries_by_mode[m] || {}).deliveries || 0), '次 / deliveries');
  document.getElementById('overdue').textContent =
    `逾期申请 ${data.overdue_total} 件（仍未答复 ${data.overdue_open} 件） / overdue requests: ${data.overdue_total} (${data.overdue_open} still open)`;
  document.body.dataset.charts = 'drawn';
}

draw().catch((err) => {
  const box = document.getElementById('chart-error');
  box.textContent = `图表数据读取失败 / the chart data could not be read: ${err.message}`;
  box.hidden = false;
});
