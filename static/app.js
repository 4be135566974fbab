/* chatbox browser client: jQuery for the page, laravel-echo + pusher-js for real time.
 *
 * Every piece of text that comes from a user (names, message bodies, group names) goes into the
 * page through jQuery's .text() or an attribute setter, never through .html().
 */
(function ($) {
  'use strict';

  var PAGE_SIZE = 20;
  var TYPING_SHOW_MS = 3000;
  var TYPING_SEND_EVERY_MS = 1500;
  var ACK_EVERY_MS = 1000;

  // ---------------------------------------------------------------- state

  var state = null;

  function freshState() {
    return {
      me: null,
      echo: null,
      presence: null,
      users: new Map(), // id -> {id, name}
      online: new Set(), // user ids seen on presence-online
      convs: new Map(), // key -> {key, kind, id, name, is_all, last_message, unread, rank}
      groups: new Map(), // id -> group {id, name, owner_id, member_ids, is_all}
      stores: new Map(), // key -> {messages: Map(id -> message), hasMore, loaded, loadingOlder}
      pending: new Map(), // client_id -> {key, body}
      current: null, // key of the open conversation
      rankCounter: 0,
      ack: { individual: 0, group: 0, sentIndividual: 0, sentGroup: 0, inFlight: false },
      timers: [],
      typingTimer: null,
      lastTypingSent: 0,
      readTimers: new Map(),
      epoch: 0,
    };
  }

  function convKey(kind, id) {
    return kind + ':' + id;
  }

  function parseKey(key) {
    var i = key.indexOf(':');
    return { kind: key.slice(0, i), id: Number(key.slice(i + 1)) };
  }

  function sameId(a, b) {
    return String(a) === String(b);
  }

  function keyOfMessage(m) {
    if (m.group_id !== undefined && m.group_id !== null) return convKey('group', m.group_id);
    var other = sameId(m.sender.id, state.me.id) ? m.recipient_id : m.sender.id;
    return convKey('user', other);
  }

  // ---------------------------------------------------------------- HTTP

  var ApiError = Chatbox.ApiError;

  /** A request to the API; a 401 while signed in means the session ended. */
  function api(method, path, body) {
    return Chatbox.request(method, path, body).catch(function (e) {
      if (e.status === 401 && state && state.me && path !== '/api/login') sessionEnded();
      throw e;
    });
  }

  function errorText(e) {
    if (e instanceof ApiError) return e.message;
    return (e && e.message) || 'Something went wrong.';
  }

  function randomId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ('0' + b.toString(16)).slice(-2);
    }).join('');
  }

  // ---------------------------------------------------------------- formatting

  var pad2 = Chatbox.pad2;

  function formatTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return '';
    var now = new Date();
    var time = pad2(d.getHours()) + ':' + pad2(d.getMinutes());
    if (d.toDateString() === now.toDateString()) return time;
    return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: d.getFullYear() === now.getFullYear() ? undefined : 'numeric' }) + ' ' + time;
  }

  function userName(id) {
    var u = state.users.get(Number(id));
    if (u) return u.name;
    if (state.me && sameId(id, state.me.id)) return state.me.name;
    return 'User #' + id;
  }

  function initials(name) {
    var parts = String(name).trim().split(/[\s._-]+/).filter(Boolean);
    var s = parts.length > 1 ? parts[0][0] + parts[1][0] : String(name).slice(0, 2);
    return s.toUpperCase();
  }

  function avatarColor(id) {
    var hues = [210, 160, 30, 280, 340, 190, 100, 250, 0, 50];
    return 'hsl(' + hues[Number(id) % hues.length] + ', 55%, 45%)';
  }

  // ---------------------------------------------------------------- views

  function showView(name) {
    $('#boot').prop('hidden', true);
    $('#auth-view').prop('hidden', name !== 'auth');
    $('#chat-view').prop('hidden', name !== 'chat');
  }

  function showAuth(tab, notice) {
    showView('auth');
    selectTab(tab || 'login');
    $('#auth-notice').text(notice || '').prop('hidden', !notice);
    document.title = 'chatbox';
  }

  function selectTab(tab) {
    $('.tab').removeClass('active').attr('aria-selected', 'false');
    $('#tab-' + tab).addClass('active').attr('aria-selected', 'true');
    $('#login-form').prop('hidden', tab !== 'login');
    $('#register-form').prop('hidden', tab !== 'register');
    $('#login-error, #register-error').prop('hidden', true).text('');
    var first = tab === 'login' ? '#login-email' : '#register-name';
    $(first).trigger('focus');
  }

  function showFormError(selector, text) {
    $(selector).text(text).prop('hidden', !text);
  }

  // ---------------------------------------------------------------- auth

  function onLogin(ev) {
    ev.preventDefault();
    var email = $('#login-email').val().trim();
    var password = $('#login-password').val();
    if (!email || !password) {
      showFormError('#login-error', 'Enter your e-mail and password.');
      return;
    }
    showFormError('#login-error', '');
    var $btn = $('#login-submit').prop('disabled', true);
    api('POST', '/api/login', { email: email, password: password })
      .then(function (res) {
        $('#login-password').val('');
        startChat(res.user);
      })
      .catch(function (e) {
        if (e.code === 'invalid_credentials') {
          showFormError('#login-error', 'Wrong e-mail or password.');
        } else {
          showFormError('#login-error', errorText(e));
        }
      })
      .then(function () {
        $btn.prop('disabled', false);
      });
  }

  function onRegister(ev) {
    ev.preventDefault();
    var body = {
      name: $('#register-name').val().trim(),
      email: $('#register-email').val().trim(),
      password: $('#register-password').val(),
    };
    showFormError('#register-error', '');
    var $btn = $('#register-submit').prop('disabled', true);
    api('POST', '/api/register', body)
      .then(function (res) {
        $('#register-password').val('');
        startChat(res.user);
      })
      .catch(function (e) {
        showFormError('#register-error', errorText(e));
      })
      .then(function () {
        $btn.prop('disabled', false);
      });
  }

  function onLogout() {
    var wasMe = state && state.me;
    stopChat();
    api('POST', '/api/logout').catch(function () {}).then(function () {
      if (wasMe) showAuth('login', 'You are signed out.');
    });
  }

  function sessionEnded() {
    if (!state || !state.me) return;
    stopChat();
    showAuth('login', 'Your session has ended. Please sign in again.');
  }

  // ---------------------------------------------------------------- start / stop

  function startChat(user) {
    stopChat();
    state = freshState();
    state.me = user;
    var epoch = state.epoch = Date.now();
    $('#me-name').text(user.name);
    $('#admin-link').prop('hidden', !user.is_admin);
    $('#conversation-list, #user-list, #message-list').empty();
    $('#conversation').prop('hidden', true);
    $('#empty-state').prop('hidden', false);
    setConnState('connecting');
    showView('chat');

    Promise.all([api('GET', '/api/users'), api('GET', '/api/conversations'), api('GET', '/api/groups')])
      .then(function (r) {
        if (!state || state.epoch !== epoch) return;
        (r[0].users || []).forEach(function (u) {
          addUser(u, false);
          if (u.online) state.online.add(Number(u.id));
        });
        (r[2].groups || []).forEach(function (g) {
          state.groups.set(Number(g.id), g);
        });
        var list = r[1].conversations || [];
        // The server lists them newest activity first; keep that order (rank: higher = newer).
        for (var i = list.length - 1; i >= 0; i--) addConversation(list[i]);
        renderUsers();
        renderConversations();
        connectRealtime();
      })
      .catch(function (e) {
        if (e.status !== 401) flash('Cannot load your conversations: ' + errorText(e));
      });

    state.timers.push(setInterval(flushAck, ACK_EVERY_MS));
    state.timers.push(setInterval(refreshTimes, 60000));
  }

  function stopChat() {
    if (!state) return;
    state.timers.forEach(clearInterval);
    state.readTimers.forEach(clearTimeout);
    clearTimeout(state.typingTimer);
    if (state.echo) {
      try {
        state.echo.disconnect();
      } catch (e) {
        /* already closed */
      }
    }
    state = null;
    closeModal();
    $('#conversation-list, #user-list, #message-list').empty();
  }

  // ---------------------------------------------------------------- real time

  function connectRealtime() {
    Chatbox.connectEcho().then(function (echo) {
      if (!state) {
        echo.disconnect();
        return;
      }
      state.echo = echo;

      var conn = echo.connector.pusher.connection;
      setConnState(conn.state);
      conn.bind('state_change', function (s) {
        setConnState(s.current);
      });

      var me = state.me.id;
      echo.private('individual.message.' + me)
        .listen('IndividualMessage', function (e) {
          receiveMessage(e.message, 'individual', !!e.backlog);
        })
        .listen('UserRegistered', onUserRegistered)
        .error(function (err) {
          flash('Cannot subscribe to your messages (' + describeSubError(err) + ').');
        });

      echo.private('group.message.' + me)
        .listen('GroupMessage', function (e) {
          receiveMessage(e.message, 'group', !!e.backlog);
        })
        .listen('AddedToGroup', function (e) {
          onAddedToGroup(e.group);
        })
        .listen('RemovedFromGroup', function (e) {
          onRemovedFromGroup(e.group_id);
        })
        .listen('GroupUpdated', function (e) {
          onGroupUpdated(e.group);
        })
        .listen('UserRegistered', onUserRegistered)
        .error(function (err) {
          flash('Cannot subscribe to your group messages (' + describeSubError(err) + ').');
        });

      state.presence = echo.join('online')
        .here(function (members) {
          // Past the server's PRESENCE_MAX_MEMBERS the list holds only this user (with the true
          // count): keep who /api/users said is online, and follow arrivals and departures.
          var count = state.presence.subscription.members.count;
          if (members.length >= count) state.online = new Set();
          members.forEach(function (m) {
            addUser(m, false);
            state.online.add(Number(m.id));
          });
          renderUsers();
        })
        .joining(function (m) {
          addUser(m, false);
          state.online.add(Number(m.id));
          renderUsers();
        })
        .leaving(function (m) {
          state.online.delete(Number(m.id));
          renderUsers();
        })
        .listenForWhisper('typing', onTypingWhisper)
        .error(function (err) {
          flash('Cannot join the online list (' + describeSubError(err) + ').');
        });
    }).catch(function (e) {
      if (e.status !== 401) {
        setConnState('unavailable');
        flash('Cannot load the real-time settings: ' + errorText(e));
      }
    });
  }

  function describeSubError(err) {
    if (!err) return 'unknown error';
    if (err.status) return 'status ' + err.status;
    if (err.error) return String(err.error);
    return 'unknown error';
  }

  var setConnState = Chatbox.showConnState;

  function noteDelivered(channel, id) {
    id = Number(id);
    if (channel === 'individual' && id > state.ack.individual) state.ack.individual = id;
    if (channel === 'group' && id > state.ack.group) state.ack.group = id;
  }

  function flushAck() {
    if (!state || state.ack.inFlight) return;
    var a = state.ack;
    var body = {};
    if (a.individual > a.sentIndividual) body.individual = a.individual;
    if (a.group > a.sentGroup) body.group = a.group;
    if (body.individual === undefined && body.group === undefined) return;
    var s = state;
    a.inFlight = true;
    api('POST', '/api/delivery/ack', body)
      .then(function () {
        if (body.individual !== undefined && body.individual > a.sentIndividual) a.sentIndividual = body.individual;
        if (body.group !== undefined && body.group > a.sentGroup) a.sentGroup = body.group;
      })
      .catch(function () {
        /* tried again on the next tick */
      })
      .then(function () {
        if (s) s.ack.inFlight = false;
      });
  }

  // ---------------------------------------------------------------- users

  function addUser(u, render) {
    if (!u || u.id === undefined || u.id === null) return;
    var id = Number(u.id);
    var known = state.users.get(id);
    if (known) {
      if (u.name && known.name !== u.name) known.name = u.name;
    } else {
      state.users.set(id, { id: id, name: u.name || 'User #' + id });
    }
    if (render) renderUsers();
  }

  function onUserRegistered(e) {
    if (!state || !e || !e.user) return;
    addUser(e.user, true);
  }

  function renderUsers() {
    var $list = $('#user-list').empty();
    var users = Array.from(state.users.values()).filter(function (u) {
      return !sameId(u.id, state.me.id);
    });
    users.sort(function (a, b) {
      var ao = state.online.has(a.id) ? 0 : 1;
      var bo = state.online.has(b.id) ? 0 : 1;
      if (ao !== bo) return ao - bo;
      return a.name.localeCompare(b.name);
    });
    users.forEach(function (u) {
      var online = state.online.has(u.id);
      var key = convKey('user', u.id);
      var $li = $('<li>', { class: 'user-item', 'data-user-id': u.id, 'data-key': key })
        .toggleClass('active', state.current === key)
        .toggleClass('online', online);
      $('<span>', { class: 'dot', title: online ? 'online' : 'offline' }).appendTo($li);
      $('<span>', { class: 'user-name' }).text(u.name).appendTo($li);
      $('<span>', { class: 'sr-only' }).text(online ? ' (online)' : ' (offline)').appendTo($li);
      $list.append($li);
    });
    if (!users.length) {
      $('<li>', { class: 'muted empty' }).text('Nobody else yet.').appendTo($list);
    }
    var others = users.filter(function (u) { return state.online.has(u.id); }).length;
    $('#online-count').text(others + ' online');
    if (state.current && parseKey(state.current).kind === 'user') renderConversationHeader();
  }

  // ---------------------------------------------------------------- conversations

  function addConversation(c) {
    var key = convKey(c.kind, c.id);
    var conv = state.convs.get(key);
    if (!conv) {
      conv = { key: key, kind: c.kind, id: Number(c.id), name: c.name, is_all: !!c.is_all, last_message: null, unread: 0 };
      state.convs.set(key, conv);
    }
    conv.name = c.name || conv.name;
    conv.is_all = !!c.is_all;
    if (c.last_message !== undefined) conv.last_message = c.last_message;
    if (typeof c.unread === 'number') conv.unread = c.unread;
    conv.rank = ++state.rankCounter;
    if (c.kind === 'user') addUser({ id: c.id, name: c.name }, false);
    return conv;
  }

  function ensureConversation(key) {
    var conv = state.convs.get(key);
    if (conv) return conv;
    var k = parseKey(key);
    if (k.kind === 'user') {
      return addConversation({ kind: 'user', id: k.id, name: userName(k.id), is_all: false, last_message: null, unread: 0 });
    }
    var g = state.groups.get(k.id);
    return addConversation({ kind: 'group', id: k.id, name: g ? g.name : 'Group #' + k.id, is_all: g ? !!g.is_all : false, last_message: null, unread: 0 });
  }

  function renderConversations() {
    var $list = $('#conversation-list').empty();
    var convs = Array.from(state.convs.values());
    convs.sort(function (a, b) {
      if (a.is_all !== b.is_all) return a.is_all ? -1 : 1;
      return b.rank - a.rank;
    });
    var totalUnread = 0;
    convs.forEach(function (c) {
      totalUnread += c.unread || 0;
      var $li = $('<li>', { class: 'conv-item', 'data-key': c.key, 'data-kind': c.kind, 'data-id': c.id })
        .toggleClass('active', state.current === c.key)
        .toggleClass('has-unread', c.unread > 0)
        .toggleClass('is-all', c.is_all);
      var label = c.is_all ? 'All' : c.kind === 'group' ? '#' : initials(c.name);
      $('<span>', { class: 'avatar' + (c.kind === 'group' ? ' group' : '') })
        .css('background', c.kind === 'user' ? avatarColor(c.id) : '')
        .text(label).appendTo($li);
      var $body = $('<span>', { class: 'conv-body' }).appendTo($li);
      var $top = $('<span>', { class: 'conv-top' }).appendTo($body);
      $('<span>', { class: 'conv-name' }).text(c.is_all ? 'All' : c.name).appendTo($top);
      if (c.kind === 'user' && state.online.has(c.id)) {
        $('<span>', { class: 'dot small', title: 'online' }).appendTo($top);
      }
      if (c.last_message) {
        $('<span>', { class: 'conv-time' }).text(formatTime(c.last_message.created_at)).appendTo($top);
      }
      var preview = '';
      if (c.last_message) {
        var who = sameId(c.last_message.sender.id, state.me.id) ? 'You' : c.last_message.sender.name;
        preview = (c.kind === 'group' || who === 'You' ? who + ': ' : '') + c.last_message.body;
      } else {
        preview = c.kind === 'group' ? 'No messages yet' : 'Say hello';
      }
      $('<span>', { class: 'conv-last' }).text(preview.replace(/\s+/g, ' ')).appendTo($body);
      if (c.unread > 0) {
        $('<span>', { class: 'badge', title: c.unread + ' unread' }).text(c.unread > 99 ? '99+' : String(c.unread)).appendTo($li);
      }
      $list.append($li);
    });
    document.title = (totalUnread > 0 ? '(' + totalUnread + ') ' : '') + 'chatbox';
  }

  // ---------------------------------------------------------------- messages in, dedupe, unread

  function receiveMessage(m, channel, backlog) {
    if (!state || !m || m.id === undefined) return;
    noteDelivered(channel, m.id);
    if (m.sender) addUser(m.sender, false);
    acceptMessage(m, { incoming: true, backlog: backlog });
  }

  // Puts a message everywhere it belongs (sidebar preview, unread count, open view). Safe to call
  // any number of times with the same message: everything is keyed by the message id.
  function acceptMessage(m, opts) {
    var key = keyOfMessage(m);
    var conv = ensureConversation(key);
    var mine = sameId(m.sender.id, state.me.id);
    var isNewest = !conv.last_message || Number(m.id) > Number(conv.last_message.id);

    if (m.client_id && state.pending.has(m.client_id) && mine) {
      state.pending.delete(m.client_id);
      $('#message-list .message.pending[data-client-id="' + cssEscape(m.client_id) + '"]').remove();
    }

    var store = state.stores.get(key);
    var fresh = false;
    if (store && !store.messages.has(Number(m.id))) {
      store.messages.set(Number(m.id), m);
      fresh = true;
    }

    if (isNewest) {
      conv.last_message = m;
      conv.rank = ++state.rankCounter;
      var viewing = state.current === key && !document.hidden;
      if (opts.incoming && !mine && !viewing) conv.unread = (conv.unread || 0) + 1;
    }
    if (state.current === key) {
      if (fresh) insertMessageEl(m, { scroll: mine || isNearBottom() });
      if (!mine) {
        hideTyping(m.sender.id);
        scheduleRead(key);
      }
    }
    renderConversations();
  }

  function cssEscape(s) {
    return window.CSS && CSS.escape ? CSS.escape(s) : String(s).replace(/["\\]/g, '\\$&');
  }

  // ---------------------------------------------------------------- opening a conversation

  function openConversation(key) {
    if (!state) return;
    var conv = ensureConversation(key);
    state.current = key;
    conv.unread = 0; // the server is told by markRead, shortly
    $('#empty-state').prop('hidden', true);
    $('#conversation').prop('hidden', false).attr('data-key', key);
    $('#message-list').empty();
    $('#send-error').prop('hidden', true);
    $('#history-start, #load-older').prop('hidden', true);
    hideTyping();
    renderConversationHeader();
    renderConversations();
    renderUsers();

    var store = state.stores.get(key);
    if (!store) {
      store = { messages: new Map(), hasMore: false, loaded: false, loadingOlder: false };
      state.stores.set(key, store);
    }
    // Re-render what is already known (also pending sends), then fetch the newest page again so
    // nothing is missed while the view was closed.
    renderAllMessages(store);
    loadPage(key, null).then(function () {
      if (state && state.current === key) scrollToBottom();
    });
    if (!document.hidden) markRead(key);
    $('#message-input').val('').trigger('focus');
    autosize();
    return conv;
  }

  function messagesPath(key) {
    var k = parseKey(key);
    return (k.kind === 'user' ? '/api/users/' : '/api/groups/') + k.id + '/messages';
  }

  function loadPage(key, before) {
    var store = state.stores.get(key);
    var url = messagesPath(key) + '?limit=' + PAGE_SIZE + (before ? '&before=' + encodeURIComponent(before) : '');
    var s = state;
    return api('GET', url).then(function (res) {
      if (!state || state !== s) return;
      var list = res.messages || [];
      var added = [];
      list.forEach(function (m) {
        if (m.sender) addUser(m.sender, false);
        if (!store.messages.has(Number(m.id))) {
          store.messages.set(Number(m.id), m);
          added.push(m);
        }
      });
      // A refresh of the newest page says nothing about older pages already loaded.
      if (before || !store.loaded) store.hasMore = !!res.has_more;
      store.loaded = true;
      var conv = state.convs.get(key);
      if (conv && list.length) {
        var newest = list[list.length - 1];
        if (!conv.last_message || Number(newest.id) > Number(conv.last_message.id)) {
          conv.last_message = newest;
          renderConversations();
        }
      }
      if (state.current === key) {
        if (before) {
          prependMessages(added);
        } else {
          added.forEach(function (m) { insertMessageEl(m, { scroll: false }); });
        }
        updateHistoryTop(store);
        scheduleRead(key);
      }
    }).catch(function (e) {
      if (state && state.current === key && e.status !== 401) {
        if (e.status === 403 || e.status === 404) {
          showSendError('This conversation is not available: ' + errorText(e));
        } else {
          showSendError('Cannot load messages: ' + errorText(e));
        }
      }
    });
  }

  function loadOlder() {
    if (!state || !state.current) return;
    var key = state.current;
    var store = state.stores.get(key);
    if (!store || !store.loaded || !store.hasMore || store.loadingOlder) return;
    var ids = Array.from(store.messages.keys());
    if (!ids.length) return;
    var oldest = Math.min.apply(null, ids);
    store.loadingOlder = true;
    $('#load-older').prop('disabled', true).text('Loading…');
    loadPage(key, oldest).then(function () {
      store.loadingOlder = false;
      $('#load-older').prop('disabled', false).text('Load older messages');
      // The view may still be at the top with more to load (short pages): keep going.
      if (state && state.current === key && $('#message-scroll').scrollTop() < 40) {
        setTimeout(loadOlder, 50);
      }
    });
  }

  function updateHistoryTop(store) {
    $('#load-older').prop('hidden', !store.hasMore);
    $('#history-start').prop('hidden', store.hasMore || !store.loaded);
  }

  function renderConversationHeader() {
    if (!state.current) return;
    var conv = state.convs.get(state.current) || ensureConversation(state.current);
    var k = parseKey(state.current);
    if (k.kind === 'user') {
      var online = state.online.has(k.id);
      $('#conv-title').text(userName(k.id));
      $('#conv-sub').text(online ? 'online' : 'offline').toggleClass('is-online', online);
      $('#group-manage').prop('hidden', true);
      return;
    }
    var g = state.groups.get(k.id);
    $('#conv-title').text(conv.is_all ? 'All' : (g ? g.name : conv.name));
    var n = g && g.member_ids ? g.member_ids.length : null;
    var sub = conv.is_all ? 'Everyone' + (n ? ' · ' + n + ' members' : '') : n ? n + ' members' : 'Group';
    $('#conv-sub').text(sub).removeClass('is-online');
    $('#group-manage').prop('hidden', conv.is_all || (g && g.is_all));
  }

  // ---------------------------------------------------------------- message rendering

  function messageEl(m) {
    var mine = sameId(m.sender.id, state.me.id);
    var $li = $('<li>', { class: 'message' + (mine ? ' mine' : ' theirs'), 'data-id': m.id });
    var $meta = $('<div>', { class: 'meta' }).appendTo($li);
    $('<span>', { class: 'sender' }).text(mine ? 'You' : m.sender.name).appendTo($meta);
    $('<time>', { class: 'time', datetime: m.created_at, title: new Date(m.created_at).toLocaleString() })
      .text(formatTime(m.created_at)).appendTo($meta);
    $('<div>', { class: 'body' }).text(m.body).appendTo($li);
    return $li;
  }

  function renderAllMessages(store) {
    var $list = $('#message-list').empty();
    var ids = Array.from(store.messages.keys()).sort(function (a, b) { return a - b; });
    ids.forEach(function (id) {
      $list.append(messageEl(store.messages.get(id)));
    });
    state.pending.forEach(function (p, clientId) {
      if (p.key === state.current) $list.append(pendingEl(p, clientId));
    });
    updateHistoryTop(store);
    scrollToBottom();
  }

  function insertMessageEl(m, opts) {
    var id = Number(m.id);
    var $list = $('#message-list');
    if ($list.children('.message[data-id="' + id + '"]').length) return;
    var $el = messageEl(m);
    var $after = null;
    $list.children('.message:not(.pending)').each(function () {
      if (Number($(this).attr('data-id')) > id) {
        $after = $(this);
        return false;
      }
      return true;
    });
    if ($after) {
      $el.insertBefore($after);
    } else {
      var $firstPending = $list.children('.message.pending').first();
      if ($firstPending.length) $el.insertBefore($firstPending);
      else $list.append($el);
    }
    if (opts && opts.scroll) scrollToBottom();
  }

  function prependMessages(list) {
    if (!list.length) return;
    var $scroll = $('#message-scroll');
    var before = $scroll[0].scrollHeight;
    var top = $scroll.scrollTop();
    list.forEach(function (m) { insertMessageEl(m, { scroll: false }); });
    $scroll.scrollTop(top + ($scroll[0].scrollHeight - before));
  }

  function pendingEl(p, clientId) {
    var $li = $('<li>', { class: 'message mine pending', 'data-client-id': clientId });
    var $meta = $('<div>', { class: 'meta' }).appendTo($li);
    $('<span>', { class: 'sender' }).text('You').appendTo($meta);
    $('<span>', { class: 'time status' }).text(p.failed ? 'not sent' : 'sending…').appendTo($meta);
    $('<div>', { class: 'body' }).text(p.body).appendTo($li);
    if (p.failed) {
      $li.addClass('failed');
      $('<button>', { type: 'button', class: 'link retry', 'data-client-id': clientId }).text('Retry').appendTo($li);
    }
    return $li;
  }

  function isNearBottom() {
    var el = $('#message-scroll')[0];
    return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  }

  function scrollToBottom() {
    var el = $('#message-scroll')[0];
    el.scrollTop = el.scrollHeight;
  }

  function refreshTimes() {
    $('#message-list time.time').each(function () {
      $(this).text(formatTime($(this).attr('datetime')));
    });
    if (state) renderConversations();
  }

  // ---------------------------------------------------------------- read marks

  // Throttled, not debounced: a stream of messages must not keep postponing the read mark.
  function scheduleRead(key) {
    if (!state || state.current !== key || document.hidden) return;
    if (state.readTimers.has(key)) return;
    var s = state;
    state.readTimers.set(key, setTimeout(function () {
      s.readTimers.delete(key);
      markRead(key);
    }, 250));
  }

  function markRead(key) {
    if (!state || state.current !== key) return;
    var conv = state.convs.get(key);
    var store = state.stores.get(key);
    var newest = 0;
    if (store) store.messages.forEach(function (m, id) { if (id > newest) newest = id; });
    if (conv && conv.last_message && Number(conv.last_message.id) > newest) newest = Number(conv.last_message.id);
    if (conv && conv.unread) {
      conv.unread = 0;
      renderConversations();
    }
    if (!newest) return;
    if (conv && conv.readUpTo >= newest) return;
    var k = parseKey(key);
    var path = (k.kind === 'user' ? '/api/users/' : '/api/groups/') + k.id + '/read';
    api('POST', path, { message_id: newest }).then(function () {
      if (conv && !(conv.readUpTo >= newest)) conv.readUpTo = newest;
    }).catch(function () { /* tried again on the next message or visit */ });
  }

  // ---------------------------------------------------------------- sending

  function showSendError(text) {
    $('#send-error').text(text || '').prop('hidden', !text);
  }

  function sendCurrent() {
    if (!state || !state.current) return;
    var $input = $('#message-input');
    var body = $input.val();
    if (!body.trim()) return;
    $input.val('');
    autosize();
    var clientId = randomId();
    state.pending.set(clientId, { key: state.current, body: body });
    $('#message-list').append(pendingEl(state.pending.get(clientId), clientId));
    scrollToBottom();
    postMessage(clientId);
  }

  function postMessage(clientId) {
    var p = state.pending.get(clientId);
    if (!p) return;
    p.failed = false;
    showSendError('');
    var k = parseKey(p.key);
    var path = (k.kind === 'user' ? '/api/users/' : '/api/groups/') + k.id + '/messages';
    var s = state;
    api('POST', path, { body: p.body, client_id: clientId })
      .then(function (res) {
        if (state !== s) return;
        state.pending.delete(clientId);
        $('#message-list .message.pending[data-client-id="' + cssEscape(clientId) + '"]').remove();
        if (res && res.message) acceptMessage(res.message, { incoming: false });
      })
      .catch(function (e) {
        if (state !== s || !state.pending.has(clientId)) return;
        if (e.status === 0 || e.status >= 500 || e.status === 429) {
          p.failed = true;
          $('#message-list .message.pending[data-client-id="' + cssEscape(clientId) + '"]').replaceWith(pendingEl(p, clientId));
          showSendError('Not sent: ' + errorText(e) + ' Use Retry to send it again.');
        } else {
          state.pending.delete(clientId);
          $('#message-list .message.pending[data-client-id="' + cssEscape(clientId) + '"]').remove();
          if (state.current === p.key && !$('#message-input').val()) $('#message-input').val(p.body);
          showSendError('Not sent: ' + errorText(e));
        }
      });
  }

  // The send box grows with its text, up to the CSS max-height.
  function autosize() {
    var el = $('#message-input')[0];
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = el.scrollHeight + 2 + 'px';
  }

  // ---------------------------------------------------------------- typing

  function sendTyping() {
    if (!state || !state.current || !state.presence) return;
    var now = Date.now();
    if (now - state.lastTypingSent < TYPING_SEND_EVERY_MS) return;
    state.lastTypingSent = now;
    var k = parseKey(state.current);
    var data = { from: state.me.id };
    if (k.kind === 'user') data.to_user = k.id;
    else data.to_group = k.id;
    try {
      state.presence.whisper('typing', data);
    } catch (e) {
      /* not subscribed yet */
    }
  }

  var typingBy = new Map(); // user id -> timeout

  function onTypingWhisper(e) {
    if (!state || !e || !state.current) return;
    var from = Number(e.from);
    if (sameId(from, state.me.id)) return;
    var k = parseKey(state.current);
    var matches = (k.kind === 'user' && e.to_user !== undefined && sameId(e.to_user, state.me.id) && sameId(k.id, from)) ||
      (k.kind === 'group' && e.to_group !== undefined && sameId(e.to_group, k.id));
    if (!matches) return;
    clearTimeout(typingBy.get(from));
    typingBy.set(from, setTimeout(function () { hideTyping(from); }, TYPING_SHOW_MS));
    renderTyping();
  }

  function hideTyping(from) {
    if (from === undefined) {
      typingBy.forEach(clearTimeout);
      typingBy.clear();
    } else {
      clearTimeout(typingBy.get(Number(from)));
      typingBy.delete(Number(from));
    }
    renderTyping();
  }

  function renderTyping() {
    var names = Array.from(typingBy.keys()).map(userName);
    var text = '';
    if (names.length === 1) text = names[0] + ' is typing…';
    else if (names.length > 1) text = names.join(', ') + ' are typing…';
    $('#typing').text(text).toggleClass('active', !!text);
  }

  // ---------------------------------------------------------------- groups

  function onAddedToGroup(g) {
    if (!state || !g) return;
    state.groups.set(Number(g.id), g);
    var key = convKey('group', g.id);
    var existed = state.convs.has(key);
    var conv = addConversation({ kind: 'group', id: g.id, name: g.name, is_all: !!g.is_all });
    if (!existed) conv.unread = conv.unread || 0;
    renderConversations();
    if (state.current === key) renderConversationHeader();
  }

  function onRemovedFromGroup(groupId) {
    if (!state) return;
    var key = convKey('group', groupId);
    state.groups.delete(Number(groupId));
    state.convs.delete(key);
    state.stores.delete(key);
    if (state.current === key) {
      closeConversation();
      flash('You are no longer in that group.');
    }
    if ($('#modal').attr('data-group-id') === String(groupId)) closeModal();
    renderConversations();
  }

  function onGroupUpdated(g) {
    if (!state || !g) return;
    var id = Number(g.id);
    if (g.member_ids && !g.member_ids.some(function (x) { return sameId(x, state.me.id); })) {
      onRemovedFromGroup(id);
      return;
    }
    state.groups.set(id, g);
    var conv = state.convs.get(convKey('group', id));
    if (conv) conv.name = g.name;
    else addConversation({ kind: 'group', id: id, name: g.name, is_all: !!g.is_all });
    renderConversations();
    if (state.current === convKey('group', id)) renderConversationHeader();
    if ($('#modal').attr('data-group-id') === String(id)) renderManageGroup(id);
  }

  function closeConversation() {
    state.current = null;
    $('#conversation').prop('hidden', true).removeAttr('data-key');
    $('#empty-state').prop('hidden', false);
    $('#message-list').empty();
    renderConversations();
    renderUsers();
  }

  function openModal(title, groupId) {
    $('#modal-title').text(title);
    $('#modal-body').empty();
    $('#modal').prop('hidden', false);
    if (groupId !== undefined) $('#modal').attr('data-group-id', groupId);
    else $('#modal').removeAttr('data-group-id');
    return $('#modal-body');
  }

  function closeModal() {
    $('#modal').prop('hidden', true).removeAttr('data-group-id');
    $('#modal-body').empty();
  }

  function memberPicker(excludeIds) {
    var $box = $('<div>', { class: 'member-picker' });
    var users = Array.from(state.users.values()).filter(function (u) {
      return !sameId(u.id, state.me.id) && !(excludeIds || []).some(function (x) { return sameId(x, u.id); });
    }).sort(function (a, b) { return a.name.localeCompare(b.name); });
    users.forEach(function (u) {
      var $label = $('<label>', { class: 'pick' });
      $('<input>', { type: 'checkbox', name: 'member', value: u.id }).appendTo($label);
      $('<span>', { class: 'dot' }).toggleClass('on', state.online.has(u.id)).appendTo($label);
      $('<span>').text(u.name).appendTo($label);
      $box.append($label);
    });
    if (!users.length) $('<p>', { class: 'muted' }).text('Nobody to add yet.').appendTo($box);
    return $box;
  }

  function openNewGroup() {
    var $body = openModal('New group');
    var $form = $('<form>', { id: 'group-form', class: 'stack', autocomplete: 'off' }).appendTo($body);
    var $name = $('<label>').text('Name ').appendTo($form);
    $('<input>', { type: 'text', id: 'group-name', maxlength: 80, required: true }).appendTo($name);
    $('<div>', { class: 'field-label' }).text('Members').appendTo($form);
    memberPicker([]).appendTo($form);
    $('<p>', { class: 'form-error', id: 'group-error', role: 'alert', hidden: true }).appendTo($form);
    var $actions = $('<div>', { class: 'actions' }).appendTo($form);
    $('<button>', { type: 'button', class: 'ghost', id: 'group-cancel' }).text('Cancel').appendTo($actions);
    $('<button>', { type: 'submit', class: 'primary', id: 'group-create' }).text('Create group').appendTo($actions);
    $('#group-name').trigger('focus');

    $form.on('submit', function (ev) {
      ev.preventDefault();
      var name = $('#group-name').val().trim();
      var ids = $form.find('input[name=member]:checked').map(function () { return Number(this.value); }).get();
      if (!name) {
        $('#group-error').text('Give the group a name.').prop('hidden', false);
        return;
      }
      var $btn = $('#group-create').prop('disabled', true);
      api('POST', '/api/groups', { name: name, member_ids: ids })
        .then(function (res) {
          onAddedToGroup(res.group);
          closeModal();
          openConversation(convKey('group', res.group.id));
        })
        .catch(function (e) {
          $('#group-error').text(errorText(e)).prop('hidden', false);
          $btn.prop('disabled', false);
        });
    });
    $('#group-cancel').on('click', closeModal);
  }

  function openManageGroup() {
    var k = parseKey(state.current);
    if (k.kind !== 'group') return;
    openModal('Group', k.id);
    renderManageGroup(k.id);
    api('GET', '/api/groups/' + k.id).then(function (res) {
      if (!state || !res || !res.group) return;
      state.groups.set(Number(res.group.id), res.group);
      if ($('#modal').attr('data-group-id') === String(k.id)) renderManageGroup(k.id);
      renderConversationHeader();
    }).catch(function (e) {
      if (e.status === 403 || e.status === 404) onRemovedFromGroup(k.id);
    });
  }

  function renderManageGroup(groupId) {
    var g = state.groups.get(Number(groupId));
    var $body = $('#modal-body').empty();
    if (!g) {
      $('<p>', { class: 'muted' }).text('Loading…').appendTo($body);
      return;
    }
    $('#modal-title').text(g.name);
    var owner = sameId(g.owner_id, state.me.id);
    var isAll = !!g.is_all;

    if (owner && !isAll) {
      var $rename = $('<form>', { id: 'rename-form', class: 'row' }).appendTo($body);
      $('<input>', { type: 'text', id: 'rename-input', maxlength: 80, 'aria-label': 'Group name' }).val(g.name).appendTo($rename);
      $('<button>', { type: 'submit', class: 'small', id: 'rename-button' }).text('Rename').appendTo($rename);
      $rename.on('submit', function (ev) {
        ev.preventDefault();
        var name = $('#rename-input').val().trim();
        if (!name) return;
        groupAction('PATCH', '/api/groups/' + g.id, { name: name }).then(function (res) {
          if (res && res.group) onGroupUpdated(res.group);
        });
      });
    }

    $('<div>', { class: 'field-label' }).text('Members (' + (g.member_ids || []).length + ')').appendTo($body);
    var $members = $('<ul>', { class: 'member-list', id: 'member-list' }).appendTo($body);
    (g.member_ids || []).slice().sort(function (a, b) { return userName(a).localeCompare(userName(b)); }).forEach(function (id) {
      var $li = $('<li>', { 'data-user-id': id }).appendTo($members);
      $('<span>', { class: 'dot' }).toggleClass('on', state.online.has(Number(id))).appendTo($li);
      $('<span>', { class: 'member-name' }).text(userName(id) + (sameId(id, state.me.id) ? ' (you)' : '')).appendTo($li);
      if (sameId(id, g.owner_id)) $('<span>', { class: 'tag' }).text('owner').appendTo($li);
      if (owner && !isAll && !sameId(id, state.me.id)) {
        $('<button>', { type: 'button', class: 'link danger remove-member', 'data-user-id': id }).text('Remove').appendTo($li);
      }
    });

    if (owner && !isAll) {
      var candidates = Array.from(state.users.values()).filter(function (u) {
        return !(g.member_ids || []).some(function (x) { return sameId(x, u.id); });
      }).sort(function (a, b) { return a.name.localeCompare(b.name); });
      if (candidates.length) {
        var $add = $('<form>', { id: 'add-member-form', class: 'row' }).appendTo($body);
        var $select = $('<select>', { id: 'add-member-select', 'aria-label': 'Person to add' }).appendTo($add);
        candidates.forEach(function (u) {
          $('<option>', { value: u.id }).text(u.name).appendTo($select);
        });
        $('<button>', { type: 'submit', class: 'small', id: 'add-member-button' }).text('Add').appendTo($add);
        $add.on('submit', function (ev) {
          ev.preventDefault();
          var uid = Number($select.val());
          if (!uid) return;
          groupAction('POST', '/api/groups/' + g.id + '/members', { user_id: uid }).then(function (res) {
            if (res && res.group) onGroupUpdated(res.group);
          });
        });
      }
    }

    $('<p>', { class: 'form-error', id: 'manage-error', role: 'alert', hidden: true }).appendTo($body);

    if (!isAll) {
      var $actions = $('<div>', { class: 'actions' }).appendTo($body);
      if (owner) {
        $('<button>', { type: 'button', class: 'danger', id: 'delete-group' }).text('Delete group').appendTo($actions);
      } else {
        $('<button>', { type: 'button', class: 'danger', id: 'leave-group' }).text('Leave group').appendTo($actions);
      }
    }

    $members.on('click', '.remove-member', function () {
      var uid = Number($(this).attr('data-user-id'));
      groupAction('DELETE', '/api/groups/' + g.id + '/members/' + uid).then(function (res) {
        if (res === undefined) return;
        var cur = state.groups.get(Number(g.id));
        if (cur) {
          cur.member_ids = (cur.member_ids || []).filter(function (x) { return !sameId(x, uid); });
          onGroupUpdated(cur);
        }
      });
    });
    confirmButton($('#delete-group'), 'Click again to delete it for everyone', function () {
      return groupAction('DELETE', '/api/groups/' + g.id).then(function (res) {
        if (res !== undefined) onRemovedFromGroup(g.id);
      });
    });
    confirmButton($('#leave-group'), 'Click again to leave', function () {
      return groupAction('DELETE', '/api/groups/' + g.id + '/members/' + state.me.id).then(function (res) {
        if (res !== undefined) onRemovedFromGroup(g.id);
      });
    });
  }

  // A destructive button that asks for a second click (no browser dialog).
  function confirmButton($btn, confirmText, action) {
    var label = $btn.text();
    var armed = null;
    $btn.on('click', function () {
      if (!armed) {
        $btn.text(confirmText).addClass('armed');
        armed = setTimeout(function () {
          armed = null;
          $btn.text(label).removeClass('armed');
        }, 4000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      $btn.prop('disabled', true);
      action().then(function () {
        $btn.prop('disabled', false).text(label).removeClass('armed');
      });
    });
  }

  // Resolves with the answer (null for 204), or undefined after showing the error.
  function groupAction(method, path, body) {
    $('#manage-error').prop('hidden', true);
    return api(method, path, body).catch(function (e) {
      $('#manage-error').text(errorText(e)).prop('hidden', false);
      return undefined;
    });
  }

  // ---------------------------------------------------------------- small UI helpers

  var flashTimer = null;

  function flash(text) {
    var $f = $('#flash');
    if (!$f.length) $f = $('<div>', { id: 'flash', class: 'flash', role: 'status' }).appendTo('body');
    $f.text(text).prop('hidden', false);
    clearTimeout(flashTimer);
    flashTimer = setTimeout(function () { $f.prop('hidden', true); }, 6000);
  }

  // ---------------------------------------------------------------- wiring

  $(function () {
    $('.tab').on('click', function () { selectTab($(this).attr('data-tab')); });
    $('#login-form').on('submit', onLogin);
    $('#register-form').on('submit', onRegister);
    $('#logout').on('click', onLogout);

    $('#conversation-list').on('click', '.conv-item', function () {
      openConversation($(this).attr('data-key'));
    });
    $('#user-list').on('click', '.user-item', function () {
      openConversation($(this).attr('data-key'));
    });
    $('#new-group').on('click', openNewGroup);
    $('#group-manage').on('click', openManageGroup);
    $('#modal-close').on('click', closeModal);
    $('#modal').on('click', function (ev) {
      if (ev.target === this) closeModal();
    });
    $(document).on('keydown', function (ev) {
      if (ev.key === 'Escape' && !$('#modal').prop('hidden')) closeModal();
    });

    $('#send-form').on('submit', function (ev) {
      ev.preventDefault();
      sendCurrent();
    });
    $('#message-input').on('keydown', function (ev) {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        sendCurrent();
      }
    }).on('input', function () {
      autosize();
      if ($(this).val().trim()) sendTyping();
    });
    $('#message-list').on('click', '.retry', function () {
      postMessage($(this).attr('data-client-id'));
    });

    $('#load-older').on('click', loadOlder);
    $('#message-scroll').on('scroll', function () {
      if (this.scrollTop < 40) loadOlder();
    });

    document.addEventListener('visibilitychange', function () {
      if (!document.hidden && state && state.current) scheduleRead(state.current);
    });

    api('GET', '/api/me')
      .then(function (res) {
        startChat(res.user);
      })
      .catch(function (e) {
        showAuth('login', e.status === 401 ? '' : errorText(e));
      });
  });
})(window.jQuery);
