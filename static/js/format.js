/* chatbox browser client, format.js: Formatting and small page helpers (times, initials, flash
 * messages, autosize).
 *
 * Every piece of text that comes from a user goes into the page through jQuery's .text() or an
 * attribute setter, never through .html().
 */
import { sameId, state } from './state.js';

// ---------------------------------------------------------------- formatting

export const pad2 = Chatbox.pad2;

export function formatTime(iso) {
  var d = new Date(iso);
  if (isNaN(d.getTime())) return '';
  var now = new Date();
  var time = pad2(d.getHours()) + ':' + pad2(d.getMinutes());
  if (d.toDateString() === now.toDateString()) return time;
  return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: d.getFullYear() === now.getFullYear() ? undefined : 'numeric' }) + ' ' + time;
}

export function userName(id) {
  var u = state.users.get(Number(id));
  if (u) return u.name;
  if (state.me && sameId(id, state.me.id)) return state.me.name;
  return 'User #' + id;
}

export function initials(name) {
  var parts = String(name).trim().split(/[\s._-]+/).filter(Boolean);
  var s = parts.length > 1 ? parts[0][0] + parts[1][0] : String(name).slice(0, 2);
  return s.toUpperCase();
}

export function avatarColor(id) {
  var hues = [210, 160, 30, 280, 340, 190, 100, 250, 0, 50];
  return 'hsl(' + hues[Number(id) % hues.length] + ', 55%, 45%)';
}

// ---------------------------------------------------------------- small UI helpers

export let flashTimer = null;

export function flash(text) {
  var $f = $('#flash');
  if (!$f.length) $f = $('<div>', { id: 'flash', class: 'flash', role: 'status' }).appendTo('body');
  $f.text(text).prop('hidden', false);
  clearTimeout(flashTimer);
  flashTimer = setTimeout(function () { $f.prop('hidden', true); }, 6000);
}
