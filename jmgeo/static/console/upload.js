// My resources: upload a file to POST /layers/upload (the upload API) with a progress
// bar, then show the load report — or the loader's message — in the page.
import { forget, save } from './forms.js';

const form = document.getElementById('upload-form');
const progress = document.getElementById('upload-progress');
const statusLine = document.getElementById('upload-status');
const errorBox = document.getElementById('upload-error');
const reportBox = document.getElementById('upload-report');
const csrf = document.querySelector('meta[name="csrf-token"]').content;

function fact(list, label, value) {
  if (value === undefined || value === null || value === '') return;
  const dt = document.createElement('dt');
  dt.textContent = label;
  const dd = document.createElement('dd');
  dd.textContent = String(value);
  list.append(dt, dd);
}

function showReport(report) {
  const facts = document.getElementById('report-facts');
  const warnings = document.getElementById('report-warnings');
  facts.replaceChildren();
  warnings.replaceChildren();
  const target = report.target || {};
  const counts = report.counts || {};
  fact(facts, '资源 / Resource', target.layer);
  fact(facts, '版本 / Version', report.published ? target.version : `${target.version}（未发布 / not published: dry run）`);
  fact(facts, '源文件 / Source', report.source && `${report.source.file} (${report.source.format})`);
  fact(facts, '坐标系 / CRS', report.crs && `${report.crs.crs} — ${report.crs.reason}`);
  fact(facts, '编码 / Encoding', report.encoding && report.encoding.encoding);
  fact(facts, '读取 / Read', counts.read);
  fact(facts, '装载 / Loaded', counts.loaded);
  fact(facts, '修复 / Repaired', counts.repaired);
  fact(facts, '拒收 / Rejected', counts.rejected);
  fact(facts, '质量 / Quality', report.quality && `${report.quality.score} / 100`);
  fact(facts, '用时 / Time', report.seconds !== undefined ? `${report.seconds} s` : '');
  for (const text of report.warnings || []) {
    const li = document.createElement('li');
    li.textContent = text;
    warnings.append(li);
  }
  const link = document.getElementById('report-link');
  link.href = `/console/resources/${encodeURIComponent(target.layer || '')}`;
  reportBox.hidden = false;
  reportBox.dataset.version = target.version;
}

function showError(text) {
  errorBox.textContent = text;
  errorBox.hidden = false;
}

form.dataset.scriptSubmit = '';
form.addEventListener('submit', (event) => {
  event.preventDefault();
  errorBox.hidden = true;
  reportBox.hidden = true;
  const data = new FormData(form);
  const xhr = new XMLHttpRequest();
  xhr.open('POST', '/layers/upload');
  xhr.setRequestHeader('X-CSRF-Token', csrf);
  xhr.setRequestHeader('Accept', 'application/json');
  progress.hidden = false;
  progress.value = 0;
  statusLine.textContent = '上传中… / uploading…';
  xhr.upload.addEventListener('progress', (e) => {
    if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100);
  });
  xhr.upload.addEventListener('load', () => {
    progress.value = 100;
    statusLine.textContent = '已上传，正在装载… / uploaded, loading…';
  });
  xhr.addEventListener('load', () => {
    let body = {};
    try {
      body = JSON.parse(xhr.responseText);
    } catch (err) {
      body = { description: xhr.responseText };
    }
    if (xhr.status === 200 || xhr.status === 201) {
      statusLine.textContent = '完成 / done';
      forget(form);
      showReport(body);
    } else if (xhr.status === 401) {
      // the session ended: keep the form (not the file) and sign in again
      save(form);
      const back = encodeURIComponent(location.pathname + location.search);
      location.assign(`/console/signin?next=${back}&expired=1`);
    } else {
      statusLine.textContent = '';
      showError(body.description || `HTTP ${xhr.status}`);
    }
  });
  xhr.addEventListener('error', () => {
    statusLine.textContent = '';
    showError('网络错误，上传未完成 / network error: the upload did not finish');
  });
  xhr.send(data);
});
