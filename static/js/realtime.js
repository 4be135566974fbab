/* chatbox browser client, realtime.js: Real time: laravel-echo + pusher-js on the user's own
 * channels and presence-online, and
 * "typing…" (sent through the API, shown from events on the user's own channels).
 *
 * Every piece of text that comes from a user goes into the page through jQuery's .text() or an
 * attribute setter, never through .html().
 */
import { TYPING_SEND_EVERY_MS, TYPING_SHOW_MS, parseKey, sameId, state } from './state.js';
import { api, errorText } from './api.js';
import { flash, userName } from './format.js';
import { addUser, onUserRegistered, onUserUpdated, renderUsers } from './lists.js';
import { onMentioned, onMessageDeleted, onMessageUpdated, onMessagesRead, receiveMessage } from './conversation.js';
import { onAddedToGroup, onGroupUpdated, onRemovedFromGroup } from './groups.js';

// ---------------------------------------------------------------- real time

export function connectRealtime() {
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
      // The server closes a signed-out user's sockets (4009), and pusher-js does not retry
      // them: signed out here too, or only elsewhere (then connect again).
      if ((s.current === 'disconnected' || s.current === 'failed') && state && state.echo === echo) {
        // A 401 here ends the session in api().
        api('GET', '/api/me').then(function () {
          if (state && state.echo === echo) echo.connector.pusher.connect();
        }, function () {});
      }
    });

    var me = state.me.id;
    echo.private('individual.message.' + me)
      .listen('IndividualMessage', function (e) {
        receiveMessage(e.message, 'individual', !!e.backlog);
      })
      .listen('UserRegistered', onUserRegistered)
      .listen('Typing', onTyping)
      .listen('MessagesRead', onMessagesRead)
      .listen('MessageUpdated', onMessageUpdated)
      .listen('MessageDeleted', onMessageDeleted)
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
      .listen('UserUpdated', onUserUpdated)
      .listen('Typing', onTyping)
      .listen('MessagesRead', onMessagesRead)
      .listen('MessageUpdated', onMessageUpdated)
      .listen('MessageDeleted', onMessageDeleted)
      .listen('Mentioned', onMentioned)
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

export function describeSubError(err) {
  if (!err) return 'unknown error';
  if (err.status) return 'status ' + err.status;
  if (err.error) return String(err.error);
  return 'unknown error';
}

export const setConnState = Chatbox.showConnState;

export function noteDelivered(channel, id) {
  id = Number(id);
  if (channel === 'individual' && id > state.ack.individual) state.ack.individual = id;
  if (channel === 'group' && id > state.ack.group) state.ack.group = id;
}

export function flushAck() {
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

// ---------------------------------------------------------------- typing

// The server tells the people of the conversation, on their own private channels, and names
// the sender itself. "All" gets no typing indicator: it would go to everyone online. Nor does an
// anonymous question: "ann is typing…" just before it would name the asker.
export function sendTyping() {
  if (!state || !state.current) return;
  if ($('#ask-anon').prop('checked') && !$('#ask-anon-label').prop('hidden')) return;
  var conv = state.convs.get(state.current);
  if (conv && conv.is_all) return;
  var now = Date.now();
  if (now - state.lastTypingSent < TYPING_SEND_EVERY_MS) return;
  state.lastTypingSent = now;
  var k = parseKey(state.current);
  var body = k.kind === 'user' ? { to_user: k.id } : { to_group: k.id };
  api('POST', '/api/typing', body).catch(function () {
    /* a lost typing indicator is not worth a message */
  });
}

export const typingBy = new Map(); // user id -> {name, timer}

// App\Events\Typing: {from: {id, name}, to_user} on the individual channel, or
// {from, group_id} on the group channel. Shown only in the open conversation.
export function onTyping(e) {
  if (!state || !e || !e.from || !state.current) return;
  var from = Number(e.from.id);
  if (sameId(from, state.me.id)) return;
  var k = parseKey(state.current);
  var matches = (k.kind === 'user' && e.to_user !== undefined && sameId(k.id, from)) ||
    (k.kind === 'group' && e.group_id !== undefined && sameId(e.group_id, k.id));
  if (!matches) return;
  var shown = typingBy.get(from);
  if (shown) clearTimeout(shown.timer);
  typingBy.set(from, {
    name: String(e.from.name || userName(from)),
    timer: setTimeout(function () { hideTyping(from); }, TYPING_SHOW_MS),
  });
  renderTyping();
}

export function hideTyping(from) {
  if (from === undefined) {
    typingBy.forEach(function (t) { clearTimeout(t.timer); });
    typingBy.clear();
  } else {
    var shown = typingBy.get(Number(from));
    if (shown) clearTimeout(shown.timer);
    typingBy.delete(Number(from));
  }
  renderTyping();
}

export function renderTyping() {
  var names = Array.from(typingBy.values()).map(function (t) { return t.name; });
  var text = '';
  if (names.length === 1) text = names[0] + ' is typing…';
  else if (names.length > 1) text = names.join(', ') + ' are typing…';
  $('#typing').text(text).toggleClass('active', !!text);
}
