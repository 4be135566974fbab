/* chatbox browser client, api.js: HTTP: calls to the chatbox API; a 401 ends the session.
 *
 * Every piece of text that comes from a user goes into the page through jQuery's .text() or an
 * attribute setter, never through .html().
 */
import { state } from './state.js';
import { sessionEnded } from './auth.js';

// ---------------------------------------------------------------- HTTP

export const ApiError = Chatbox.ApiError;

/** A request to the API; a 401 while signed in means the session ended. */
export function api(method, path, body) {
  return Chatbox.request(method, path, body).catch(function (e) {
    if (e.status === 401 && state && state.me && path !== '/api/login') sessionEnded();
    throw e;
  });
}

export function errorText(e) {
  if (e instanceof ApiError) return e.message;
  return (e && e.message) || 'Something went wrong.';
}

export function randomId() {
  var bytes = new Uint8Array(12);
  window.crypto.getRandomValues(bytes);
  return Array.prototype.map.call(bytes, function (b) {
    return ('0' + b.toString(16)).slice(-2);
  }).join('');
}
