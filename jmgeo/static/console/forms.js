// Keep what a person typed in a console form across a sign-in.
//
// When a session ends (expiry, idle timeout, sign-out elsewhere) the next submit is sent
// to the sign-in page; the values typed are saved here first (sessionStorage: this tab
// only, gone when it closes) and put back when the form's page is shown again after the
// sign-in. Never saved: passwords, files, hidden fields (the CSRF token among them).
// A page that confirms a form's success says so (data-done="<form key>" on #console) and the
// saved copy is dropped.

const PREFIX = 'jmgeo.console.form:';

function keyOf(form) {
  return PREFIX + form.dataset.keep;
}

function kept(el) {
  return el.name && !['password', 'file', 'hidden', 'submit', 'button'].includes(el.type);
}

export function save(form) {
  const values = [];
  for (const el of form.elements) {
    if (!kept(el)) continue;
    if (el.type === 'checkbox' || el.type === 'radio') {
      values.push([el.name, el.value, el.checked]);
    } else {
      values.push([el.name, el.value]);
    }
  }
  try {
    sessionStorage.setItem(keyOf(form), JSON.stringify(values));
  } catch (err) {
    // storage full or disabled: the form still submits, only nothing is kept
  }
}

export function forget(form) {
  sessionStorage.removeItem(keyOf(form));
}

export function restore(form) {
  const raw = sessionStorage.getItem(keyOf(form));
  if (!raw) return false;
  sessionStorage.removeItem(keyOf(form));
  let values;
  try {
    values = JSON.parse(raw);
  } catch (err) {
    return false;
  }
  for (const [name, value, checked] of values) {
    for (const el of form.elements) {
      if (el.name !== name || !kept(el)) continue;
      if (el.type === 'checkbox' || el.type === 'radio') {
        if (el.value === value) el.checked = Boolean(checked);
      } else {
        el.value = value;
        break;
      }
    }
  }
  const note = document.createElement('p');
  note.className = 'notice';
  note.setAttribute('role', 'status');
  note.dataset.restored = form.dataset.keep;
  note.textContent = '已恢复您登录前填写的内容，请检查后再提交。 / What you typed before signing in is back: check it and submit again.';
  form.prepend(note);
  return true;
}

const done = (document.getElementById('console') || document.body).dataset.done;
if (done) sessionStorage.removeItem(PREFIX + done);

for (const form of document.querySelectorAll('form[data-keep]')) {
  if (form.dataset.keep !== done) restore(form);
  if (!('scriptSubmit' in form.dataset)) {
    form.addEventListener('submit', () => save(form));
  }
}
