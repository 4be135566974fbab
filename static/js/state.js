/* chatbox browser client, state.js: What the page knows: the signed-in user, people, conversations,
 * messages, and the timers of
 * this sign-in. `state` is null while nobody is signed in; `resetState` / `clearState` change it.
 *
 * Every piece of text that comes from a user goes into the page through jQuery's .text() or an
 * attribute setter, never through .html().
 */
// ---------------------------------------------------------------- constants

export const PAGE_SIZE = 20;
export const TYPING_SHOW_MS = 3000;
export const TYPING_SEND_EVERY_MS = 1500;
export const ACK_EVERY_MS = 1000;

// ---------------------------------------------------------------- state

export let state = null;

/** Starts a fresh sign-in: new state, returned. */
export function resetState() {
  state = freshState();
  return state;
}

/** Nobody is signed in. */
export function clearState() {
  state = null;
}

export function freshState() {
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
    // key -> Map(user id -> {name, up_to}): how far the others read ("seen"), from history
    // answers and App\Events\MessagesRead.
    readMarks: new Map(),
    // Ids of the anonymous questions sent from this page: they carry no sender, even to the asker.
    myAnonymous: new Set(),
    epoch: 0,
  };
}

export function convKey(kind, id) {
  return kind + ':' + id;
}

export function parseKey(key) {
  var i = key.indexOf(':');
  return { kind: key.slice(0, i), id: Number(key.slice(i + 1)) };
}

export function sameId(a, b) {
  return String(a) === String(b);
}

export function keyOfMessage(m) {
  if (m.group_id !== undefined && m.group_id !== null) return convKey('group', m.group_id);
  var other = sameId(m.sender.id, state.me.id) ? m.recipient_id : m.sender.id;
  return convKey('user', other);
}

/** Whether the signed-in user sent `m`. An anonymous question has no sender: only the page that
 * asked it knows. */
export function isMine(m) {
  if (m.sender) return sameId(m.sender.id, state.me.id);
  return state.myAnonymous.has(Number(m.id));
}

/** Who a message is from, as the page shows it: "You", the sender's name, or the pseudonym. */
export function authorLabel(m) {
  if (isMine(m)) return m.pseudonym ? 'You (anonymously)' : 'You';
  if (m.sender) return m.sender.name;
  return 'Anonymous ' + (m.pseudonym || '');
}
