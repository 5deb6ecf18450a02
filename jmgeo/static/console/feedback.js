// Ratings and corrections: every form.api-form is sent as JSON to its data-api URL (the
// supervision API) with the session's CSRF token; the page is then shown again with the
// lists as they now are. A field marked data-type="int" is sent as a number; an empty
// field is left out. When the session has ended the form is kept and the person signs in.
import { forget, save } from './forms.js';

const csrf = document.querySelector('meta[name="csrf-token"]').content;

function payload(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.type === 'submit') continue;
    if ((el.type === 'radio' || el.type === 'checkbox') && !el.checked) continue;
    const value = el.value.trim();
    if (value === '') continue;
    body[el.name] = el.dataset.type === 'int' ? Number.parseInt(value, 10) : value;
  }
  return body;
}

for (const form of document.querySelectorAll('form.api-form')) {
  form.dataset.scriptSubmit = '';
  const error = form.querySelector('.error');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const response = await fetch(form.dataset.api, {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': csrf },
        body: JSON.stringify(payload(form)),
      });
      let body = {};
      try {
        body = await response.json();
      } catch (err) {
        body = {};
      }
      if (response.status === 401) {
        save(form);
        const back = encodeURIComponent(location.pathname + location.search);
        location.assign(`/console/signin?next=${back}&expired=1`);
        return;
      }
      if (!response.ok) throw new Error(body.description || `HTTP ${response.status}`);
      forget(form);
      location.assign(`/console/feedback?done=${encodeURIComponent(form.dataset.keep)}`);
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      button.disabled = false;
    }
  });
}
