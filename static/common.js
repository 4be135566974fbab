// Shared by the chat page (js/main.js and its modules) and the admin page (admin.js): JSON
// requests to the API, the real-time client configured from /api/config, and the connection-state
// badge.
(function (global) {
  'use strict';

  /** An error answer: `status` (0 when the server could not be reached), `code`, `message`. */
  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }

  /** `fetch` with the session cookie and JSON in and out; rejects with an ApiError. */
  function request(method, path, body) {
    var init = { method: method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(
      function (res) {
        return res.text().then(function (text) {
          var json = null;
          try {
            json = text ? JSON.parse(text) : null;
          } catch (e) {
            json = null;
          }
          if (res.ok) return json;
          var err = (json && json.error) || {};
          throw new ApiError(res.status, err.code || 'http_' + res.status,
            err.message || 'The server answered ' + res.status + '.');
        });
      },
      function () {
        throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection and try again.');
      }
    );
  }

  /** A laravel-echo client (pusher-js underneath) for this server, from /api/config. */
  function connectEcho() {
    return request('GET', '/api/config').then(function (cfg) {
      var p = (cfg && cfg.pusher) || {};
      var EchoCtor = global.Echo && (global.Echo.default || global.Echo);
      var port = Number(p.ws_port) || Number(location.port) || (location.protocol === 'https:' ? 443 : 80);
      return new EchoCtor({
        broadcaster: 'pusher',
        key: p.key,
        wsHost: p.ws_host || location.hostname,
        wsPort: port,
        wssPort: port,
        forceTLS: !!p.force_tls,
        enabledTransports: ['ws', 'wss'],
        cluster: 'mt1',
        disableStats: true,
        authEndpoint: '/broadcasting/auth',
      });
    });
  }

  var CONN_LABELS = {
    initialized: ['connecting', 'Connecting…'],
    connecting: ['connecting', 'Connecting…'],
    connected: ['connected', 'Connected'],
    unavailable: ['unavailable', 'Offline — retrying'],
    failed: ['unavailable', 'Real time not supported'],
    disconnected: ['unavailable', 'Disconnected'],
  };

  /** Shows a pusher-js connection state in the `#conn-state` badge. */
  function showConnState(s) {
    var l = CONN_LABELS[s] || ['connecting', s];
    $('#conn-state')
      .removeClass('conn-connected conn-connecting conn-unavailable')
      .addClass('conn-' + l[0])
      .attr('data-state', s)
      .text(l[1]);
  }

  /** Two digits: 7 → "07". */
  function pad2(n) {
    return (n < 10 ? '0' : '') + n;
  }

  global.Chatbox = {
    ApiError: ApiError,
    request: request,
    connectEcho: connectEcho,
    showConnState: showConnState,
    pad2: pad2,
  };
})(window);
