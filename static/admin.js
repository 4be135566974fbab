/* chatbox admin page: who is online (presence-online, live) and the server's figures.
 * User text goes into the page through .text() only.
 */
(function ($) {
  'use strict';

  var STATS_EVERY_MS = 2000;
  var PRESENCE_EVERY_MS = 3000;

  var rows = new Map(); // user id -> {user_id, name, connections, since, live}

  var api = Chatbox.request;

  function showError(text) {
    $('#admin-error').text(text || '').prop('hidden', !text);
  }

  var pad2 = Chatbox.pad2;

  function formatSince(iso) {
    if (!iso) return '…';
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    var now = new Date();
    var time = pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
    if (d.toDateString() === now.toDateString()) return time;
    return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' }) + ' ' + time;
  }

  function formatUptime(s) {
    s = Math.max(0, Math.floor(Number(s) || 0));
    var d = Math.floor(s / 86400);
    var h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60);
    var sec = s % 60;
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + pad2(m) + 'm';
    if (m) return m + 'm ' + pad2(sec) + 's';
    return sec + 's';
  }

  function formatNumber(n, digits) {
    if (n === undefined || n === null || isNaN(Number(n))) return '–';
    return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits || 0, minimumFractionDigits: digits || 0 });
  }

  // ---------------------------------------------------------------- stats

  function refreshStats() {
    api('GET', '/api/admin/stats').then(function (s) {
      $('#stat-connections').text(formatNumber(s.connections));
      $('#stat-mps').text(formatNumber(s.messages_per_second, 1));
      $('#stat-queue').text(formatNumber(s.queue_depth));
      $('#stat-uptime').text(formatUptime(s.uptime_seconds));
    }).catch(onFailure);
  }

  // ---------------------------------------------------------------- presence

  function refreshPresence() {
    api('GET', '/api/admin/presence').then(function (p) {
      var seen = new Set();
      (p.online || []).forEach(function (o) {
        var id = Number(o.user_id);
        seen.add(id);
        rows.set(id, { user_id: id, name: o.name, connections: o.connections, since: o.since, live: false });
      });
      rows.forEach(function (r, id) {
        // Keep a user who joined over the socket a moment ago until the next answer knows them.
        if (!seen.has(id) && !r.live) rows.delete(id);
        else if (!seen.has(id)) r.live = false;
      });
      renderNodes(p.nodes || []);
      $('#presence-updated').text('updated ' + formatSince(new Date().toISOString()));
      showError('');
      renderRows();
    }).catch(onFailure);
  }

  function renderRows() {
    var $body = $('#online-rows').empty();
    var list = Array.from(rows.values()).sort(function (a, b) {
      return String(a.name).localeCompare(String(b.name));
    });
    list.forEach(function (r) {
      var $tr = $('<tr>', { 'data-user-id': r.user_id }).toggleClass('just-joined', !!r.live);
      var $name = $('<td>').appendTo($tr);
      var $cell = $('<span>', { class: 'name-cell' }).appendTo($name);
      $('<span>', { class: 'dot on' }).appendTo($cell);
      $('<span>', { class: 'user-name' }).text(r.name).appendTo($cell);
      $('<td>', { class: 'num' }).text(String(r.user_id)).appendTo($tr);
      $('<td>', { class: 'num connections' }).text(r.connections === undefined ? '…' : String(r.connections)).appendTo($tr);
      $('<td>', { class: 'since' }).text(formatSince(r.since)).appendTo($tr);
      $body.append($tr);
    });
    $('#online-count').text('(' + list.length + ')');
    $('#online-empty').prop('hidden', list.length > 0);
  }

  // The live nodes of the cluster (one when embedded), as their leases last told.
  function renderNodes(nodes) {
    var $body = $('#node-rows').empty();
    nodes.forEach(function (n) {
      var $tr = $('<tr>');
      $('<td>').text(String(n.id)).appendTo($tr);
      $('<td>', { class: 'num' }).text(formatNumber(n.connections)).appendTo($tr);
      $('<td>', { class: 'since' }).text(formatSince(n.started_at)).appendTo($tr);
      $body.append($tr);
    });
    $('#node-count').text('(' + nodes.length + ')');
  }

  function memberJoined(m) {
    var id = Number(m.id);
    if (!rows.has(id)) {
      rows.set(id, { user_id: id, name: m.name || 'User #' + id, connections: undefined, since: new Date().toISOString(), live: true });
    }
  }

  var setConnState = Chatbox.showConnState;

  function connectRealtime() {
    return Chatbox.connectEcho().then(function (echo) {
      var conn = echo.connector.pusher.connection;
      setConnState(conn.state);
      conn.bind('state_change', function (s) {
        setConnState(s.current);
        if (s.current === 'connected') refreshPresence();
      });
      echo.join('online')
        .here(function (members) {
          members.forEach(memberJoined);
          renderRows();
        })
        .joining(function (m) {
          memberJoined(m);
          renderRows();
          refreshPresence();
        })
        .leaving(function (m) {
          rows.delete(Number(m.id));
          renderRows();
        })
        .error(function (err) {
          showError('Cannot join the online list (status ' + ((err && err.status) || '?') + ').');
        });
    });
  }

  function onFailure(e) {
    if (e.status === 401) {
      showError('Your session has ended. Sign in again on the chat page.');
    } else if (e.status === 403) {
      showError('This page is for administrators only.');
    } else {
      showError(e.message);
    }
  }

  $(function () {
    api('GET', '/api/me').then(function (res) {
      $('#me-name').text(res.user.name);
      if (!res.user.is_admin) {
        showError('This page is for administrators only.');
        return;
      }
      refreshStats();
      refreshPresence();
      setInterval(refreshStats, STATS_EVERY_MS);
      setInterval(refreshPresence, PRESENCE_EVERY_MS);
      connectRealtime().catch(onFailure);
    }).catch(onFailure);
  });
})(window.jQuery);
