// The supervision dashboard (督办看板): ECharts (the platform's own copy) drawing the
// figures of one period from GET /supervision/figures, the overdue list from
// GET /supervision/freshness and — for the bureau and the auditor — the filed reports
// (GET/POST /supervision/reports). The API decides whose figures these are: the whole
// city for the bureau and the auditor, a department's own for a department.
import * as echarts from '/static/vendor/echarts/echarts.esm.min.mjs';
import { forget, save } from './forms.js';

const EN = document.documentElement.lang === 'en';
const L = (zh, en) => (EN ? en : zh);
const board = document.getElementById('dashboard');
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const BLUE = '#1f5fa8';
const COLOURS = { on_time: '#2e7d32', overdue: '#f0a30a', delinquent: '#c62828' };
const MODES = {
  system: L('系统对接', 'system'), fep: L('前置机', 'front-end processor'),
  query: L('联机查询', 'online query'), download: L('批量下载', 'download'),
};
const MODE_COLOURS = ['#1f5fa8', '#6a9fd8', '#2e7d32', '#f0a30a'];
const STATE = {
  overdue: L('逾期', 'overdue'), delinquent: L('严重逾期', 'delinquent'),
  due: L('临期', 'due'), fresh: L('按期', 'fresh'),
};
const CYCLES = {
  realtime: L('实时', 'real time'), daily: L('每日', 'daily'), weekly: L('每周', 'weekly'),
  monthly: L('每月', 'monthly'), quarterly: L('每季度', 'quarterly'),
  halfyearly: L('每半年', 'half-yearly'), yearly: L('每年', 'yearly'),
  other: L('其他（按季度）', 'other (quarterly)'),
};
const SECTIONS = {
  cataloguing: L('编目完整率', 'cataloguing'), timeliness: L('更新及时率', 'timeliness'),
  quality: L('质量分', 'quality'), requests: L('申请按期率', 'requests on time'),
};
const charts = [];

async function api(url, options = {}) {
  const response = await fetch(url, {
    credentials: 'same-origin', ...options,
    headers: { Accept: 'application/json', ...(options.headers || {}) },
  });
  let body = {};
  try {
    body = await response.json();
  } catch (err) {
    body = {};
  }
  if (response.status === 401) {
    const back = encodeURIComponent(location.pathname + location.search);
    location.assign(`/console/signin?next=${back}&expired=1`);
  }
  if (!response.ok) throw new Error(body.description || `HTTP ${response.status}`);
  return body;
}

const pct = (v) => (v === null || v === undefined ? '—' : `${(100 * v).toFixed(1)}%`);
const num = (v) => (v === null || v === undefined ? '—' : String(v));

function chart(id, option) {
  const c = echarts.init(document.getElementById(id), null, { renderer: 'canvas' });
  c.setOption({
    animation: false,
    textStyle: { fontFamily: 'Noto Sans CJK SC, sans-serif' },
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    legend: { top: 0 },
    grid: { left: 8, right: 24, top: 32, bottom: 8, containLabel: true },
    ...option,
  });
  charts.push(c);
  return c;
}

// one horizontal bar chart per department: series = [[key, label, colour]]
function byDept(id, section, names, series, stack) {
  const codes = Object.keys(section.by_dept).filter((c) => c && c !== 'null').sort();
  chart(id, {
    yAxis: { type: 'category', data: codes.map((c) => names[c] || c), inverse: true },
    xAxis: { type: 'value', minInterval: 1 },
    series: series.map(([key, label, colour]) => ({
      name: label, type: 'bar', stack, data: codes.map((c) => section.by_dept[c][key] || 0),
      itemStyle: { color: colour }, label: { show: !stack, position: 'right' },
    })),
  });
}

function fact(list, label, value, id) {
  const dt = document.createElement('dt');
  dt.textContent = label;
  const dd = document.createElement('dd');
  dd.textContent = value;
  if (id) dd.id = id;
  list.append(dt, dd);
}

function row(tbody, cells) {
  const tr = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement('td');
    if (cell instanceof Node) td.append(cell); else td.textContent = cell;
    tr.append(td);
  }
  tbody.append(tr);
  return tr;
}

function empty(tbody, columns, text) {
  const tr = document.createElement('tr');
  const td = document.createElement('td');
  td.colSpan = columns;
  td.textContent = text;
  tr.append(td);
  tbody.append(tr);
}

function drawFigures(fig) {
  const names = Object.fromEntries(fig.departments.map((d) => [d.code, d.name]));
  const s = fig.sections;
  const p = fig.period;
  document.getElementById('as-of').textContent = p.complete
    ? L(`${p.zh}（${p.start} 至 ${p.end}）`, `${p.label} (${p.start} to ${p.end})`)
    : L(`${p.zh}，数据截至 ${p.as_of}`, `${p.label}, figures as of ${p.as_of}`);
  const head = document.getElementById('headline');
  head.replaceChildren();
  const t = s.timeliness.total;
  fact(head, L('更新及时率', 'Timeliness'),
    `${pct(t.rate)}（${num(t.on_time || 0)}/${num(t.obligations || 0)}）`, 'fig-timeliness');
  const r = s.requests.total;
  fact(head, L('共享申请（收到/答复）', 'Requests (received/answered)'),
    `${num(r.received || 0)} / ${num(r.answered || 0)}`, 'fig-requests');
  fact(head, L('答复用时中位数', 'Median answer time'),
    r.median_working_days === null || r.median_working_days === undefined ? '—'
      : L(`${r.median_working_days} 个工作日`, `${r.median_working_days} working days`));
  fact(head, L('交付次数', 'Deliveries'), num(s.exchange.total.deliveries || 0), 'fig-deliveries');
  const c = s.corrections.total;
  fact(head, L('纠错（提出/办结）', 'Corrections (raised/closed)'),
    `${num(c.raised || 0)} / ${num(c.closed || 0)}`, 'fig-corrections');
  fact(head, L('平均质量分', 'Mean quality score'), num(s.quality.total.mean_score));

  byDept('chart-timeliness', s.timeliness, names, [
    ['on_time', L('按期', 'on time'), COLOURS.on_time],
    ['overdue', L('逾期', 'overdue'), COLOURS.overdue],
    ['delinquent', L('严重逾期', 'delinquent'), COLOURS.delinquent]], 'ladder');
  const reqCodes = Object.keys(s.requests.by_dept).sort();
  chart('chart-requests', {
    yAxis: { type: 'category', data: reqCodes.map((k) => names[k] || k), inverse: true },
    xAxis: [{ type: 'value', minInterval: 1, name: L('件', 'requests') }],
    series: [
      ['received', L('收到', 'received'), BLUE], ['answered', L('已答复', 'answered'), '#6a9fd8'],
      ['overdue', L('逾期', 'overdue'), COLOURS.delinquent],
      ['median_working_days', L('答复用时中位数（工作日）', 'median answer (working days)'), COLOURS.overdue],
    ].map(([key, label, colour]) => ({
      name: label, type: 'bar', itemStyle: { color: colour },
      data: reqCodes.map((k) => s.requests.by_dept[k][key] ?? '-'),
      label: { show: true, position: 'right' },
    })),
  });
  const modes = Object.keys(MODES);
  const exCodes = Object.keys(s.exchange.by_dept)
    .filter((k) => k && k !== 'null' && s.exchange.by_dept[k].deliveries > 0).sort();
  chart('chart-exchange', {
    yAxis: { type: 'category', data: exCodes.map((k) => names[k] || k), inverse: true },
    xAxis: { type: 'value', minInterval: 1, name: L('次', 'deliveries') },
    series: modes.map((m, i) => ({
      name: MODES[m], type: 'bar', stack: 'modes', itemStyle: { color: MODE_COLOURS[i] },
      data: exCodes.map((k) => s.exchange.by_dept[k][m] || 0),
    })),
  });
  byDept('chart-corrections', s.corrections, names, [
    ['raised', L('提出', 'raised'), BLUE], ['closed', L('办结', 'closed'), COLOURS.on_time],
    ['overdue', L('逾期', 'overdue'), COLOURS.delinquent]]);
  const qCodes = Object.keys(s.quality.by_dept).sort();
  chart('chart-quality', {
    yAxis: { type: 'category', data: qCodes.map((k) => names[k] || k), inverse: true },
    xAxis: [{ type: 'value', min: 0, max: 100 }, { type: 'value', min: 0, max: 5, position: 'top' }],
    series: [
      ['mean_score', L('质量分（0–100）', 'quality score (0–100)'), BLUE, 0],
      ['mean_rating', L('评议星级（1–5）', 'rating (1–5)'), COLOURS.overdue, 1],
    ].map(([key, label, colour, axis]) => ({
      name: label, type: 'bar', xAxisIndex: axis, itemStyle: { color: colour },
      label: { show: true, position: 'right' },
      data: qCodes.map((k) => s.quality.by_dept[k][key] ?? '-'),
    })),
  });

  document.getElementById('weights').textContent = L('综合分 = 各项比率加权（权重：', 'Score = the rates, weighted (weights: ')
    + Object.entries(fig.weights).map(([k, w]) => `${SECTIONS[k] || k} ${w}`).join(L('，', ', '))
    + L('）；部门无某项数据时该项不计入权重。', '); a rate a department has no figure for is left out of its weights.');
  const rank = document.querySelector('#ranking tbody');
  rank.replaceChildren();
  for (const x of fig.ranking) {
    const cat = s.cataloguing.by_dept[x.dept] || {};
    const tim = s.timeliness.by_dept[x.dept] || {};
    const qua = s.quality.by_dept[x.dept] || {};
    const req = s.requests.by_dept[x.dept] || {};
    const tr = row(rank, [
      String(x.rank), x.name, num(x.score),
      `${pct(x.cataloguing)}（${cat.complete || 0}/${(cat.entries || 0) + (cat.uncatalogued || 0)}）`,
      `${pct(x.timeliness)}（${tim.on_time || 0}/${tim.obligations || 0}）`,
      x.quality === null ? '—' : `${num(qua.mean_score)}（${qua.scored || 0} ${L('个资源', 'resources')}）`,
      `${pct(x.requests)}（${(req.received || 0) - (req.overdue || 0)}/${req.received || 0}）`,
    ]);
    tr.dataset.dept = x.dept;
  }
  if (!fig.ranking.length) empty(rank, 7, L('本期无排名数据。', 'No ranking for this period.'));
}

function drawOverdue(fresh) {
  const tbody = document.querySelector('#overdue tbody');
  tbody.replaceChildren();
  const late = fresh.resources.filter((x) => x.state === 'overdue' || x.state === 'delinquent');
  for (const x of late) {
    const tr = row(tbody, [`${x.title || x.resource}（${x.resource}）`, x.dept_name || x.dept,
      CYCLES[x.cycle] || x.cycle, num(x.deadline), num(x.late_days), num(x.last_update), STATE[x.state]]);
    tr.className = `state-${x.state}`;
    tr.dataset.resource = x.resource;
  }
  if (!late.length) empty(tbody, 7, L('没有逾期未更新的资源。', 'No resource is overdue.'));
}

function link(href, text) {
  const a = document.createElement('a');
  a.href = href;
  a.textContent = text;
  return a;
}

async function drawReports() {
  const body = await api('/supervision/reports');
  const tbody = document.querySelector('#reports tbody');
  tbody.replaceChildren();
  for (const r of body.reports) {
    const files = document.createElement('span');
    files.append(link(`/supervision/reports/${r.id}.pdf`, 'PDF'), ' · ',
      link(`/supervision/reports/${r.id}.xlsx`, 'XLSX'));
    const tr = row(tbody, [String(r.id), r.period, r.as_of,
      `${r.filed_at.slice(0, 16).replace('T', ' ')} ${r.filed_by}`,
      pct((r.summary || {}).timeliness_rate), files]);
    tr.dataset.report = r.id;
  }
  if (!body.reports.length) empty(tbody, 6, L('尚无通报。', 'No report filed yet.'));
}

function fileReports() {
  const form = document.getElementById('report-form');
  if (!form) return;
  const status = document.getElementById('report-status');
  const error = document.getElementById('report-error');
  form.dataset.scriptSubmit = '';
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    status.textContent = L('正在生成通报… ', 'filing the report… ');
    save(form);
    try {
      const out = await api('/supervision/reports', {
        method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
        body: JSON.stringify({ period: form.elements.period.value }),
      });
      forget(form);
      status.textContent = L(`已出具通报 ${out.id}（${out.period}）`, `report ${out.id} filed (${out.period})`);
      status.dataset.filed = out.id;
      await drawReports();
    } catch (err) {
      status.textContent = '';
      error.textContent = err.message;
      error.hidden = false;
    }
  });
}

async function draw() {
  const period = board.dataset.period;
  const [fig, fresh] = await Promise.all([
    api(`/supervision/figures?period=${encodeURIComponent(period)}`),
    api('/supervision/freshness')]);
  drawFigures(fig);
  drawOverdue(fresh);
  document.body.dataset.charts = 'drawn';
  if (board.dataset.reports === '1') await drawReports();
  document.body.dataset.reports = 'listed';
}

document.getElementById('period').addEventListener('change', (e) => e.target.form.submit());
window.addEventListener('resize', () => charts.forEach((c) => c.resize()));
fileReports();
draw().catch((err) => {
  const box = document.getElementById('chart-error');
  box.textContent = L(`数据读取失败：${err.message}`, `the figures could not be read: ${err.message}`);
  box.hidden = false;
});
