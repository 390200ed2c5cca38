/*
 * chatws.h -- the stable C ABI of libchatws, an embeddable WebSocket chat engine.
 *
 * This header is the contract. Everything a host program may rely on is
 * written here; anything not written here is an implementation detail.
 *
 * Threads
 *   A server's event loop runs on one thread at a time: the thread inside
 *   chatws_server_run() or chatws_server_poll() (the "loop thread"). Every
 *   callback runs on the loop thread. Functions marked "any thread" may be
 *   called from any thread at any time; from a thread other than the loop
 *   thread they are queued and the loop is woken (eventfd), so their result
 *   only says whether the request was accepted. Functions marked "loop
 *   thread" may be called from a callback, or between polls from the owner
 *   thread: the thread that last entered chatws_server_run() or
 *   chatws_server_poll() (before that, the thread that created the server).
 *   From any other thread, or from the owner while another thread is inside
 *   run/poll, they return CHATWS_ETHREAD (and "any thread" functions are
 *   queued instead of acting at once).
 *
 *   Threads may take turns at polling: each chatws_server_poll() makes its
 *   thread the owner. Turns must not overlap: a run/poll that begins while
 *   another thread is inside run/poll, or inside a loop-thread call it makes
 *   between its polls, returns CHATWS_ESTATE at once, having done nothing
 *   (call again once that call has returned; hosts that take turns hand the
 *   loop over with a lock or a queue of their own). No call ever blocks
 *   waiting for another thread's.
 *
 *   Several loops (chatws_options.threads > 1): the server runs one loop
 *   per thread, each owning its connections (how they are spread over the
 *   loops: chatws_options.accept_mode). "The loop thread"
 *   above then means a connection's own loop thread:
 *   - every callback of a connection runs on its loop's thread, one at a
 *     time; callbacks of connections on different loops may run at the same
 *     time, so a host's shared state needs its own lock. on_log may come
 *     from any loop thread.
 *   - "any thread" functions stay any-thread. chatws_send() and
 *     chatws_close() act at once on the connection's own loop thread and are
 *     queued to its loop from any other thread (from another loop's thread,
 *     batched: one hand-over per loop and iteration). chatws_broadcast()
 *     encodes the frame once and queues it by reference to every other
 *     loop; from a loop thread it returns the receivers on that loop.
 *   - "loop thread" functions about a connection (user data, info) answer
 *     on that connection's loop thread only: CHATWS_ETHREAD (NULL for
 *     chatws_conn_user_data) from another loop's callback.
 *     chatws_connections() lists the calling loop's connections.
 *     Before chatws_server_run(), the creating thread may call them as the
 *     owner of every loop.
 *   - chatws_server_poll() and chatws_server_fd() return CHATWS_ESTATE: use
 *     chatws_server_run() (e.g. on a thread of the host's).
 *   - chatws_server_stop() stops every loop (close 1001 on each, each
 *     drained); chatws_server_run() returns once all have stopped and their
 *     threads are joined, so after it (and in chatws_server_destroy()) no
 *     thread of the server is left.
 *
 * Callbacks and re-entrancy
 *   Inside any callback (on_open, on_message, on_close, on_drain, on_chat,
 *   on_log), including those that chatws_server_stop() and
 *   chatws_server_destroy() cause:
 *   - chatws_server_run() and chatws_server_poll() return CHATWS_ESTATE: the
 *     loop is never re-entered (the data being delivered would be reused
 *     under the callback).
 *   - chatws_server_destroy() of the same server does nothing (it is in use;
 *     chatws_last_error() says so): destroy it after run/poll returned.
 *     Other servers may be created, run and destroyed as anywhere else.
 *   - every other function may be called, as on the loop thread:
 *     chatws_send(), chatws_broadcast() and chatws_close() act at once, the
 *     loop-thread functions answer.
 *   - once the server has stopped, and all through chatws_server_destroy(),
 *     chatws_send(), chatws_broadcast(), chatws_close() and chatws_chat_post()
 *     return CHATWS_ESTOPPED; chatws_server_stop() returns CHATWS_OK and has
 *     no further effect.
 *   - on_close may read and set the user data and the info of the connection
 *     it reports, whatever closed it (close handshake, FIN or reset, idle or
 *     close timeout, write error, slow consumer, stop, destroy); after it
 *     returns the id is stale.
 *
 * Connections
 *   A connection is named by a chatws_conn_id, a 64-bit number that is never
 *   reused during a server's life and is never 0. A call with the id of a
 *   connection that has closed returns CHATWS_ENOCONN; it never crashes.
 *
 * Errors
 *   Functions that can fail return an int: 0 (CHATWS_OK) or a positive
 *   status on success, a negative CHATWS_E* code on failure.
 *   chatws_strerror() names a code; chatws_last_error() gives a message with
 *   details about the last failure on the calling thread. No C++ exception
 *   ever crosses this interface.
 *
 * Signals
 *   The library never raises a signal in the host: sockets are written with
 *   MSG_NOSIGNAL, so a peer that reset gets its connection closed (1006)
 *   instead of a SIGPIPE, and the host may keep SIGPIPE's default disposition.
 *
 * Strings
 *   Strings passed in are UTF-8 and are copied before the call returns
 *   unless stated otherwise. Pointers passed to callbacks are owned by the
 *   library and are valid only until the callback returns.
 */
#ifndef CHATWS_H
#define CHATWS_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(CHATWS_BUILDING)
#    define CHATWS_API __declspec(dllexport)
#  elif defined(CHATWS_SHARED)
#    define CHATWS_API __declspec(dllimport)
#  else
#    define CHATWS_API
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define CHATWS_API __attribute__((visibility("default")))
#else
#  define CHATWS_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- versions */

#define CHATWS_VERSION_MAJOR 0
#define CHATWS_VERSION_MINOR 2
#define CHATWS_VERSION_PATCH 0
#define CHATWS_VERSION_STRING "0.2.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, comparable with chatws_version_number(). */
#define CHATWS_VERSION_NUMBER \
  (CHATWS_VERSION_MAJOR * 10000 + CHATWS_VERSION_MINOR * 100 + CHATWS_VERSION_PATCH)

/* The version of the library actually loaded, e.g. "0.2.0". Static string; any thread. */
CHATWS_API const char* chatws_version(void);
/* The loaded library's CHATWS_VERSION_NUMBER. Any thread. */
CHATWS_API int chatws_version_number(void);

/* ------------------------------------------------------------------ errors */

enum {
  CHATWS_OK = 0,
  CHATWS_EINVAL = -1,      /* an argument is invalid (NULL handle, bad code, bad option) */
  CHATWS_ENOMEM = -2,      /* out of memory */
  CHATWS_ENOCONN = -3,     /* no such connection: it closed, or the id never existed */
  CHATWS_ETHREAD = -4,     /* a loop-thread function was called from another thread */
  CHATWS_ESTATE = -5,      /* not allowed now (e.g. run while already running) */
  CHATWS_ESYSTEM = -6,     /* a system call failed; chatws_last_error() has errno's text */
  CHATWS_ETOOBIG = -7,     /* message larger than max_message_size */
  CHATWS_EFULL = -8,       /* the connection's output queue is full: message dropped
                              (chatws_chat_post: max_rooms rooms exist) */
  CHATWS_ESTOPPED = -9,    /* the server is stopping or stopped */
  CHATWS_ESTORAGE = -10,   /* the history store failed (disk full, read-only, corrupt) */
  CHATWS_EINTERNAL = -11   /* an unexpected internal failure (a bug); see chatws_last_error() */
};

/* Positive (success) status of chatws_send(): queued, but the connection's
 * output queue is now above its soft limit (a slow reader). */
#define CHATWS_QUEUED_OVER_LIMIT 1

/* A short static English description of an error code ("unknown error" for
 * unknown codes). Never NULL. Any thread. */
CHATWS_API const char* chatws_strerror(int code);

/* Details of the last error returned to the calling thread by any chatws_*
 * function, or "" if none. Thread-local; valid until the next chatws_* call
 * on this thread. Never NULL. Any thread. */
CHATWS_API const char* chatws_last_error(void);

/* ----------------------------------------------------------------- handles */

typedef struct chatws_server chatws_server; /* opaque */
typedef uint64_t chatws_conn_id;

/* Opcodes for chatws_send() and chatws_broadcast(). */
#define CHATWS_TEXT 1
#define CHATWS_BINARY 2

/* Close codes (RFC 6455 section 7.4.1) used by the library. */
#define CHATWS_CLOSE_NORMAL 1000
#define CHATWS_CLOSE_GOING_AWAY 1001
#define CHATWS_CLOSE_PROTOCOL_ERROR 1002
#define CHATWS_CLOSE_UNSUPPORTED 1003
#define CHATWS_CLOSE_NO_STATUS 1005   /* reported to on_close only, never sent */
#define CHATWS_CLOSE_ABNORMAL 1006    /* reported to on_close only: TCP closed without a close frame */
#define CHATWS_CLOSE_INVALID_DATA 1007
#define CHATWS_CLOSE_POLICY 1008
#define CHATWS_CLOSE_TOO_BIG 1009
#define CHATWS_CLOSE_INTERNAL_ERROR 1011
#define CHATWS_CLOSE_TRY_AGAIN 1013

/* Slow-consumer policies (chatws_options.slow_consumer_policy). */
#define CHATWS_SLOW_CLOSE 0 /* close the connection with 1008 "too slow" (default) */
#define CHATWS_SLOW_DROP 1  /* drop messages for it; chatws_send() returns CHATWS_EFULL */

/* -------------------------------------------------------------- callbacks */

/* A WebSocket handshake completed. */
typedef void (*chatws_open_cb)(chatws_server* server, chatws_conn_id conn, void* user);

/* A complete message arrived. `data` (not NUL-terminated) is valid until the
 * callback returns. `is_binary` is 0 for text (already validated as UTF-8),
 * 1 for binary. */
typedef void (*chatws_message_cb)(chatws_server* server, chatws_conn_id conn,
                                  const char* data, size_t len, int is_binary,
                                  void* user);

/* The connection is gone. `code` is the peer's close code, the code the
 * library sent, or CHATWS_CLOSE_ABNORMAL (1006) / CHATWS_CLOSE_NO_STATUS
 * (1005). `reason` is NUL-terminated UTF-8, valid until the callback returns.
 * Called once for every connection that got on_open, on every close path
 * (including at chatws_server_destroy()); chatws_conn_user_data() and
 * chatws_conn_get_info() still answer for `conn` until it returns, so this
 * is where the host frees its per-connection data. After this callback the
 * id is stale. */
typedef void (*chatws_close_cb)(chatws_server* server, chatws_conn_id conn, int code,
                                const char* reason, void* user);

/* The connection's output queue, which had gone above the soft limit, has
 * been fully written to the socket. */
typedef void (*chatws_drain_cb)(chatws_server* server, chatws_conn_id conn, void* user);

/* Chat moderation (chat mode only): a valid chat message is about to be
 * stored and broadcast to `room`. Return CHATWS_CHAT_ACCEPT to let it
 * through, CHATWS_CHAT_REJECT to drop it (the sender receives an error frame
 * and nobody else sees it). To rewrite it, point msg->user / msg->text at
 * buffers of the host's that stay valid until the callback returns (they are
 * copied and re-validated) and return CHATWS_CHAT_ACCEPT. */
typedef struct chatws_chat_message {
  const char* room;   /* NUL-terminated room name ("" for the default room) */
  const char* user;   /* not NUL-terminated; see user_len */
  size_t user_len;
  const char* text;   /* not NUL-terminated; see text_len */
  size_t text_len;
  int64_t time_ms;    /* server time, ms since the Unix epoch */
} chatws_chat_message;

#define CHATWS_CHAT_ACCEPT 0
#define CHATWS_CHAT_REJECT 1
typedef int (*chatws_chat_cb)(chatws_server* server, chatws_conn_id conn,
                              chatws_chat_message* msg, void* user);

/* Log levels of chatws_log_cb. */
#define CHATWS_LOG_DEBUG 0
#define CHATWS_LOG_INFO 1
#define CHATWS_LOG_WARNING 2
#define CHATWS_LOG_ERROR 3

/* A line for the host's log, about something the host sees no other way
 * (e.g. a client that spoke plain HTTP to the TLS port: one CHATWS_LOG_DEBUG
 * line per such connection). Rare, never per message. `message` is
 * NUL-terminated UTF-8, valid until the callback returns. Loop thread. */
typedef void (*chatws_log_cb)(chatws_server* server, int level, const char* message, void* user);

/* TLS protocol versions (chatws_options.tls_min_version). TLS 1.0 and 1.1
 * are never accepted. */
#define CHATWS_TLS_1_2 12
#define CHATWS_TLS_1_3 13

/* ------------------------------------------------------------ upgrade hook */

/* A name and a value (headers, query parameters, cookies). NUL-terminated. */
typedef struct chatws_header {
  const char* name;
  const char* value;
} chatws_header;

/* What the upgrade hook (chatws_options.on_upgrade) sees of a WebSocket
 * upgrade request that passed the protocol checks (method, version, key,
 * Origin, path prefix, the chat's room name). Everything is owned by the
 * library and valid only until the hook returns: copy what a pending
 * decision needs later. Fields beyond struct_size are absent (a later
 * library may add fields at the end). A path or query whose percent-encoding
 * is malformed, or decodes to a NUL byte, is answered 400 before the hook. */
typedef struct chatws_upgrade_request {
  size_t struct_size;             /* sizeof(chatws_upgrade_request) of the library */
  chatws_conn_id id;              /* names the request in chatws_upgrade_resolve(); the
                                     connection keeps this id once open */
  const char* method;             /* "GET" */
  const char* path;               /* percent-decoded, without the query, e.g. "/rooms/a b" */
  const char* raw_path;           /* as sent, e.g. "/rooms/a%20b" */
  const char* query;              /* after '?', as sent; "" if none */
  const chatws_header* query_params; /* decoded ('+' is a space), in order, duplicates kept; a
                                     parameter without '=' has the value "" */
  size_t query_param_count;
  const chatws_header* headers;   /* every request header in order, duplicates kept; values
                                     trimmed. chatws_upgrade_header() looks one up */
  size_t header_count;
  const chatws_header* cookies;   /* of every Cookie header, in order, duplicates kept;
                                     surrounding double quotes removed */
  size_t cookie_count;
  const char* remote_address;     /* "127.0.0.1", "::1" */
  uint16_t remote_port;
  const char* const* subprotocols; /* offered by the client (Sec-WebSocket-Protocol), in order */
  size_t subprotocol_count;
  const char* subprotocol;        /* the one chatws will choose; "" if none */
} chatws_upgrade_request;

/* The value of the first header named `name` (ASCII case-insensitive), of
 * the first query parameter named `name`, of the first cookie named `name`
 * (both case-sensitive); NULL if none (or a NULL argument). The pointer is
 * the request's: valid until the hook returns. Inside the hook only. */
CHATWS_API const char* chatws_upgrade_header(const chatws_upgrade_request* req, const char* name);
CHATWS_API const char* chatws_upgrade_query_param(const chatws_upgrade_request* req,
                                                  const char* name);
CHATWS_API const char* chatws_upgrade_cookie(const chatws_upgrade_request* req, const char* name);

/* Actions of chatws_upgrade_answer. */
#define CHATWS_UPGRADE_ACCEPT 0   /* send the 101 (with identity, user_data, headers) */
#define CHATWS_UPGRADE_REJECT 1   /* send status/reason/body/headers and close */
#define CHATWS_UPGRADE_PENDING 2  /* decide later with chatws_upgrade_resolve() (hook only) */

/* The hook's answer. The library initialises it (action ACCEPT, all else
 * NULL/0) before calling the hook; for chatws_upgrade_resolve() initialise
 * with chatws_upgrade_answer_init(). Strings are copied before the call
 * returns. An answer that breaks a rule below is never sent: from the hook,
 * the client gets 500 and on_log an error line naming the rule; from
 * chatws_upgrade_resolve(), CHATWS_EINVAL and the request keeps waiting. */
typedef struct chatws_upgrade_answer {
  size_t struct_size;           /* set by chatws_upgrade_answer_init() */
  int action;                   /* CHATWS_UPGRADE_ACCEPT (0), _REJECT or _PENDING */
  /* Accept. */
  const char* identity;         /* the user name bound to the connection for its life
                                   (chatws_conn_get_info; the chat posts under it): UTF-8,
                                   1-1024 bytes, no control characters. NULL: none */
  void* user_data;              /* the connection's user data (chatws_conn_user_data) */
  /* Reject. */
  int status;                   /* 400-599 */
  const char* reason;           /* reason phrase, at most 128 bytes, no control characters;
                                   NULL or "": the standard one ("Unauthorized") */
  const char* body;             /* text/plain body, at most 4096 bytes; NULL: empty */
  /* Accept and reject: extra response headers, e.g. WWW-Authenticate,
   * Set-Cookie. At most 32; name an HTTP token and not one chatws writes
   * (Content-Length, Content-Type, Connection, Upgrade, Transfer-Encoding,
   * Sec-WebSocket-*); value without CR, LF or other controls; name + value
   * at most 4096 bytes. */
  const chatws_header* headers;
  size_t header_count;
} chatws_upgrade_answer;

/* Zero *answer (action ACCEPT) and set struct_size. Any thread. */
CHATWS_API void chatws_upgrade_answer_init(chatws_upgrade_answer* answer);

/* The upgrade hook. Runs on the loop thread for every WebSocket upgrade
 * request after the protocol checks pass and before the 101; fills *answer.
 * It must not block: a decision that needs I/O (an auth service, a
 * database) answers CHATWS_UPGRADE_PENDING and calls
 * chatws_upgrade_resolve(server, req->id, ...) later from any thread. A
 * pending request never resolved is answered 503 (Retry-After: 1) when
 * handshake_timeout_ms (counted from the connection's start) passes; with
 * the timeout disabled (-1) it waits until its client leaves. Bytes the
 * client sends meanwhile are kept, at most max_request_size (beyond: 400).
 * The hook may hand req->id to another thread before it returns: a resolve
 * that comes first is applied as soon as the hook has returned PENDING (and
 * is moot if the hook answered otherwise). */
typedef void (*chatws_upgrade_cb)(chatws_server* server, const chatws_upgrade_request* req,
                                  chatws_upgrade_answer* answer, void* user);

/* Answer the pending upgrade request `request` (a req->id whose hook
 * answered CHATWS_UPGRADE_PENDING) with an accept or a reject. Any thread;
 * from the loop thread it applies at once, from another it is queued and
 * the loop woken. Returns CHATWS_OK; CHATWS_ENOCONN, a no-op, when no such
 * request waits (its client disconnected, it timed out, the server is
 * stopping, or it was resolved already); CHATWS_EINVAL (NULL answer, action
 * PENDING, or a rule of chatws_upgrade_answer broken: chatws_last_error()
 * names it, nothing is sent and the request keeps waiting). */
CHATWS_API int chatws_upgrade_resolve(chatws_server* server, chatws_conn_id request,
                                      const chatws_upgrade_answer* answer);

/* ---------------------------------------------------------------- options */

/* Options for chatws_server_create(). Always initialise with
 * chatws_options_init(): it sets struct_size, which lets later versions add
 * fields without breaking programs built against this header. A field left
 * at its initial value takes the default documented beside it. */
typedef struct chatws_options {
  size_t struct_size;           /* set by chatws_options_init(); do not change */

  const char* host;             /* address to bind; default "127.0.0.1" ("::1", "0.0.0.0" ...) */
  uint16_t port;                /* TCP port; 0 (default) picks a free port, see chatws_server_port() */
  const char* static_dir;       /* directory served over HTTP GET/HEAD (files streamed, at
                                   most 64 KiB each in memory; Range, ETag/Last-Modified
                                   conditional requests); NULL (default): none */
  const char* subprotocols;     /* comma-separated, in the server's order of preference, e.g.
                                   "json"; the first one the client also offers is chosen.
                                   NULL (default): none negotiated */
  const char* allowed_origins;  /* comma-separated exact Origin values; a handshake with another
                                   Origin gets 403. NULL (default): any origin */
  const char* websocket_path_prefix; /* only request paths that start with this may upgrade
                                   (others: 404). NULL (default): any path */

  /* Limits. 0 means the default. */
  size_t max_request_size;      /* request line + headers; default 8192; exceeded: HTTP 431 */
  size_t max_message_size;      /* one message (all fragments); default 16 MiB; exceeded: close 1009,
                                   decided from the frame header before the payload is
                                   buffered. Chat connections are bounded lower, by the
                                   longest valid chat message (about 54 KB with the default
                                   user and text limits) */
  size_t max_fragments;         /* fragments per message; default 65536; exceeded: close 1009 */
  size_t max_output_buffer;     /* output queued per connection that its socket will not
                                   take yet; default 1 MiB; exceeded: slow_consumer_policy
                                   applies (the 101 and what on_open sends are exempt once,
                                   by their own size). HTTP responses are never dropped: no
                                   further request is read while min(this, 64 KiB) wait */
  uint32_t max_connections;     /* open WebSocket + HTTP connections; default 100000;
                                   exceeded: HTTP 503 to the new one */
  uint32_t max_connections_per_ip; /* default 0 = unlimited; exceeded: HTTP 503. IPv6
                                   peers count by prefix: see ipv6_prefix_length */
  int slow_consumer_policy;     /* CHATWS_SLOW_CLOSE (default) or CHATWS_SLOW_DROP */

  /* Timeouts in milliseconds. 0 means the default; -1 (any negative value)
   * disables: no deadline. */
  int handshake_timeout_ms;     /* whole HTTP request must arrive within; default 10000 */
  int idle_timeout_ms;          /* no traffic for this long: the server pings, and closes with
                                   1006 if nothing arrives within another idle period;
                                   default 60000 */
  int close_timeout_ms;         /* wait for the peer's close reply, then close TCP (on_close
                                   with the code sent); default 5000. Values from 1 to 99 mean
                                   100 (a prompt peer must not be cut short). -1: no deadline:
                                   a peer that never answers stays until it closes TCP or the
                                   server stops (drain_timeout_ms) or is destroyed. Once both
                                   sides are done (also after an HTTP response that closes),
                                   the wait for the peer's FIN is bounded by this value, and
                                   by 5000 when it is -1 */
  int drain_timeout_ms;         /* graceful stop: wait for close replies and output; default
                                   5000; what is left at the deadline is closed (1006 to
                                   on_close unless a close frame was sent). -1: no deadline,
                                   the stop completes once every connection has closed
                                   (close_timeout_ms still applies to each) */

  /* Callbacks; each may be NULL. All run on the loop thread. */
  chatws_open_cb on_open;
  chatws_message_cb on_message;
  chatws_close_cb on_close;
  chatws_drain_cb on_drain;
  void* user;                   /* passed to every callback; owned by the host */

  /* Chat mode: when chat != 0, WebSocket connections that negotiate the
   * "json" subprotocol (the classic wire format) or "chatws.v1" (the richer
   * one) on "/" or "/rooms/<name>" are handled by the built-in chat: their
   * messages go to on_chat (moderation), history and the room, not to
   * on_message. Other connections reach on_message as usual. */
  int chat;                     /* default 0 */
  const char* history_path;     /* SQLite file for durable history; NULL (default): in memory */
  uint32_t history_size;        /* messages kept (and stored: older ones are deleted from
                                   history_path) and sent per room; default 50 */
  uint32_t max_user_length;     /* characters; default 64 */
  uint32_t max_text_length;     /* characters; default 4096 */
  chatws_chat_cb on_chat;       /* moderation hook; NULL: accept all */

  /* Added in 0.1.0, after the chat fields (struct_size tells them apart). */
  int socket_send_buffer;       /* SO_SNDBUF of each accepted socket in bytes (the kernel
                                   doubles it); 0: the default, 98304 (96 KiB), so that a client
                                   that never reads holds at most about 200 KB in the kernel's
                                   send queue on top of max_output_buffer (autotuned, Linux
                                   lets it grow to tcp_wmem's maximum, about 4 MB). -1: the
                                   kernel's autotuning (since 0.2.0; 0.1.0's default), for
                                   bulk transfers over long links: one connection's rate is
                                   at most about twice this value per round trip. A smaller
                                   value bounds kernel memory further and makes a slow reader
                                   reach max_output_buffer sooner. Below -1: CHATWS_EINVAL */

  /* Added in 0.2.0 (struct_size tells them apart). 0 means the default. */

  /* Chat mode. */
  uint32_t max_rooms;           /* rooms that may exist at once; default 10000. In memory:
                                   the rooms held (in use, or idle with their history); a new
                                   room beyond it drops the least recently used idle room, or
                                   is refused if every room has members. With history_path:
                                   the rooms stored in the file plus those in use without a
                                   message yet; a new room beyond it is refused (stored
                                   history is never dropped for it). Refused: HTTP 503 "too
                                   many rooms" at the upgrade (close 1013 if the last room was
                                   taken between upgrade and open), CHATWS_EFULL from
                                   chatws_chat_post(). With history_path the file holds at most
                                   max_rooms x history_size messages: older ones are deleted
                                   as new ones are stored */
  size_t max_idle_room_bytes;   /* memory for rooms nobody is in (kept so that a returning
                                   member gets the history); default 64 MiB. Beyond it the
                                   least recently used of them are dropped from memory:
                                   without history_path their history is then gone, with it
                                   they are reloaded from the file */

  /* Engine. */
  uint32_t ipv6_prefix_length;  /* max_connections_per_ip counts IPv6 peers by this many
                                   leading bits of their address, since one host usually
                                   holds a whole /64: 1..128, 0 (default) means 64; 128
                                   counts each address apart. IPv4 peers (also IPv4-mapped
                                   ones) always count by their whole address. Above 128:
                                   CHATWS_EINVAL */
  size_t max_buffered_input;    /* bytes of partial messages (announced by their frame
                                   headers) held at once by all connections together;
                                   default 0 = 4 x max_message_size (64 MiB with the
                                   defaults). A frame that would exceed it closes its
                                   connection with 1013 (try again later) before any of it
                                   is stored; the other connections and what they hold are
                                   not affected. Whole messages that arrive in one read are
                                   delivered in place and not counted */

  /* Added in 0.2.0: TLS. With a certificate and a key the port speaks only
   * TLS 1.2/1.3 (OpenSSL): https:// for the static files and wss:// for
   * WebSockets. The TLS handshake counts against handshake_timeout_ms and
   * max_connections; a client that sends plain HTTP gets a plain-text 400
   * and is closed. A missing, unreadable, malformed or mismatched certificate
   * or key makes chatws_server_create() fail with CHATWS_EINVAL and a
   * chatws_last_error() naming the file and OpenSSL's reason. */
  const char* tls_cert_file;    /* PEM: the certificate, then its chain; NULL (default): no TLS */
  const char* tls_key_file;     /* PEM private key of that certificate */
  const char* tls_key_passphrase; /* where the key's passphrase is, as openssl(1) -passin:
                                   "pass:TEXT", "env:VARIABLE" or "file:PATH" (first line);
                                   NULL (default): the key is not encrypted */
  int tls_min_version;          /* CHATWS_TLS_1_2 (default, 0) or CHATWS_TLS_1_3 */
  const char* tls_ciphers;      /* TLS 1.2 cipher list, OpenSSL syntax; NULL (default): ECDHE
                                   with AES-GCM or ChaCha20-Poly1305 only */
  const char* tls_ciphersuites; /* TLS 1.3 suites; NULL (default): TLS_AES_128_GCM_SHA256,
                                   TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256.
                                   The server's order is used (both lists), except that a
                                   client listing ChaCha20 first gets it */
  int tls_session_tickets;      /* session resumption by ticket: 0 (default) on, its keys
                                   rotated every 12 hours (a ticket lives 12-24 h; a reload
                                   keeps them); -1 off. ALPN always offers http/1.1 */
  chatws_log_cb on_log;         /* NULL (default): no log lines. Lines a client can cause at
                                   will (a refused handshake: CHATWS_LOG_INFO; a slow-consumer
                                   close: CHATWS_LOG_WARNING) are rate limited to 10 per 10 s
                                   of each kind; the next line let through says how many
                                   were held back (see chatws_stats.log_lines_suppressed) */

  /* Added in 0.2.0: metrics. A listener of its own, served by the same
   * loop and with the same limits and timeouts as the main one, answering
   * GET /metrics (Prometheus text format 0.0.4, see README "Metrics"),
   * /healthz (200 while the loop runs) and /readyz (200, or 503 while
   * stopping, not accepting or the history store fails); 404 for any other
   * path or a WebSocket upgrade. Off unless one of the two is set. A
   * metrics port that cannot be bound makes chatws_server_create() fail
   * with CHATWS_ESYSTEM. */
  const char* metrics_host;     /* address of the metrics listener; NULL (default):
                                   "127.0.0.1" if metrics_port is set, else no listener */
  int metrics_port;             /* its TCP port; 0 (default): a free one if metrics_host is
                                   set (see chatws_server_metrics_port()), else no listener */

  /* Added in 0.2.0: access (issue 12). */
  chatws_upgrade_cb on_upgrade; /* who may connect, as whom (see chatws_upgrade_cb); NULL
                                   (default): every upgrade that passes the checks */
  /* Flood control: a token bucket per connection, max_messages_per_second
   * tokens a second up to message_burst, one per message. */
  int max_messages_per_second;  /* 0 (default): chat connections 20, raw connections no limit;
                                   > 0: this for both; -1: no limit for either. Over it, a chat
                                   message is neither stored nor delivered and the sender gets
                                   the error "rate limited: ..." (classic {"error": ...}), and
                                   nothing more of its input is read until the next token is
                                   due (what it sent meanwhile waits in TCP, in order, and is
                                   handled then): a flooder costs the loop one refusal per
                                   refill interval, not one per message. A raw message is
                                   handled by rate_limit_policy. Below -1: EINVAL */
  int message_burst;            /* 0 (default): chat max(40, rate), raw the rate; else >= 1 */
  int rate_limit_policy;        /* raw connections over the limit: CHATWS_RATE_CLOSE (default,
                                   close 1008 "rate limited") or CHATWS_RATE_DROP (message
                                   dropped, on_message not called) */
  uint32_t max_handshakes_per_second_per_ip; /* WebSocket upgrades per second from one
                                   address (IPv6 by ipv6_prefix_length), that many at once;
                                   beyond: HTTP 429 with Retry-After: 1. 0 (default): no limit */

  /* Added in 0.2.0: cluster mode (issue 16, docs/cluster.md). Several
   * servers that name the same Redis share their chat rooms: every message
   * is appended to its room's Redis Stream (the appends of one loop
   * iteration in one round trip) and delivered to the room's members on
   * every node, this one included, only once it is stored there, in one
   * order on every node; chatws.v1 message ids are the stream positions
   * (1, 2, 3 ... per room), and its member counts count every live node
   * (heartbeats: a crashed node's members drop out within about 13 s). Redis is driven by this loop without blocking
   * it. chatws_server_create() checks that Redis answers (waiting up to 3
   * s, before the loop runs) and fails with CHATWS_ESTORAGE and a message
   * naming the URL if not. While Redis is unreachable later, senders get
   * the error "storage unavailable", members stay connected, joins wait
   * for their greeting (hello or snapshot), and the server reconnects with backoff (100 ms
   * doubling to 5 s) and then delivers what it missed, from the positions
   * it had: nothing twice, nothing out of order. A sender whose reply was
   * lost with the connection is told "storage unavailable" though the
   * append may have run: if it did, the message is delivered to everyone
   * (its sender too) after the reconnect, once. chatws_post() is
   * asynchronous in this mode: CHATWS_OK means queued while Redis was up,
   * a later failure goes to on_log. Requires chat; excludes history_path
   * (CHATWS_EINVAL). Use an IP address or a name in /etc/hosts: the name
   * is resolved at each (re)connect, which may block the loop. */
  const char* cluster_url;      /* "redis://[[user]:password@]host[:port][/db]" (port 6379 and
                                   db 0 by default); copied. NULL or "" (default): one node */
  const char* node_name;        /* this node's name in the appends' keys; copied. NULL
                                   (default): "<hostname>:<pid>" */
  uint32_t cluster_retention;   /* entries kept per room stream (approximate, XADD MAXLEN ~),
                                   and the recovery window: a chatws.v1 join with ?since=<id>
                                   at most this many messages behind gets exactly the ones
                                   after it (read from Redis beyond history_size), further
                                   behind "reset":true; 0 (default): the larger of
                                   history_size and 1000 */

  /* Added in 0.2.0: permessage-deflate (RFC 7692), negotiated with every
   * client that offers it (browsers and most libraries do). A compressed
   * message counts against max_message_size by its inflated size, checked
   * while it is inflated: past it, close 1009 (memory stays within the
   * limit); one that does not inflate, or is not UTF-8 once inflated, closes
   * with 1007. Control frames are never compressed. */
  int compression;              /* CHATWS_COMPRESSION_SHARED (default, 0): no context
                                   takeover either way, so a broadcast or chat frame is
                                   deflated once for every receiver and an idle connection
                                   holds no zlib state; CHATWS_COMPRESSION_DEDICATED: a
                                   sliding window per connection (better ratios on
                                   long-lived connections; zlib state made on first use and
                                   freed when the connection idles, about 256 KiB while in
                                   use with the defaults); CHATWS_COMPRESSION_OFF: not
                                   negotiated. Other values: CHATWS_EINVAL */
  uint32_t compression_threshold; /* messages with fewer payload bytes go out uncompressed;
                                   0 (default): 128; 1 compresses every non-empty message. A
                                   message that deflate does not make smaller always goes out
                                   as it is */
  int compression_window_bits;  /* 9..15: the server's deflate window (2^bits bytes) and the
                                   one it asks of clients whose offer allows it (bounds the
                                   inflate memory of dedicated mode); 0 (default): 15. Else
                                   CHATWS_EINVAL */
  int compression_mem_level;    /* 1..9: zlib memLevel of the server's deflate streams (memory
                                   against speed and ratio); 0 (default): 8. Else
                                   CHATWS_EINVAL */
  int compression_always;       /* 1: a message at or above compression_threshold goes out
                                   compressed even when deflate does not make it smaller (for
                                   peers that mishandle uncompressed messages once the
                                   extension is on: the kosoku 0.1.0 conformance driver does);
                                   0 (default): such a message goes out as it is. Else
                                   CHATWS_EINVAL */

  /* Added in 0.2.0 (issue 15): several event loops.
   * threads: 1 (default; also when 0 was never set by an older header) one
   * loop, driven by chatws_server_run() or chatws_server_poll() as always.
   * N > 1 (at most 256): N loops, each on a thread of its own with its own
   * epoll, connections, timers and buffers, new connections spread over
   * them as accept_mode says. -1: one loop per core available to the
   * process. Other values: CHATWS_EINVAL.
   * With more than one loop (see "Threads" above for the full contract):
   *   - chatws_server_run() runs them all (loop 0 on the calling thread,
   *     the others on threads it starts) and returns once every loop has
   *     stopped and its thread has been joined; chatws_server_poll() and
   *     chatws_server_fd() return CHATWS_ESTATE (chatws_last_error() says
   *     why): there is no single descriptor to wait on.
   *   - callbacks of different connections may run at the same time on
   *     different loop threads; the callbacks of one connection always run
   *     on its loop's thread, one at a time.
   *   - max_connections, max_connections_per_ip,
   *     max_handshakes_per_second_per_ip and max_buffered_input are the
   *     whole server's limits: they count every loop's connections,
   *     upgrades and partial messages together.
   *   - the metrics listener is served by loop 0; chatws_server_get_stats()
   *     and /metrics sum every loop's counters.
   *   - TLS: the loops share one certificate and one set of session-ticket
   *     keys, so a session resumes on whichever loop the client reaches, and
   *     chatws_server_reload_tls() switches every loop at once (or none).
   *   - chat: a room's members may be on any loop; every member receives
   *     the room's messages in one order, each stored in the history before
   *     it is delivered (the chat is one ordering point, a lock every loop
   *     takes for its chat work: on_chat runs under it). A classic-format
   *     member behind on its output is sent the latest snapshot once it has
   *     caught up, not every one, whichever loop it is on. cluster_url
   *     needs threads 1 (CHATWS_EINVAL). */
  int threads;
  /* How new connections reach the loops when threads > 1 (one loop: not
   * used). CHATWS_ACCEPT_REUSEPORT (0, the default): every loop listens on
   * the port (SO_REUSEPORT) and the kernel picks a loop by a hash of the
   * connection's addresses and ports: no hand-over, but nothing evens out
   * the loops' counts when connections leave unevenly. CHATWS_ACCEPT_HANDOFF:
   * loop 0 alone listens and hands each connection to the loop with the
   * fewest (loop 0's thread accepts for all; one cross-thread command per
   * connection, batched per iteration). Other values: CHATWS_EINVAL. */
  int accept_mode;
} chatws_options;

/* chatws_options.accept_mode. */
#define CHATWS_ACCEPT_REUSEPORT 0
#define CHATWS_ACCEPT_HANDOFF 1

/* permessage-deflate modes (chatws_options.compression). */
#define CHATWS_COMPRESSION_SHARED 0
#define CHATWS_COMPRESSION_OFF (-1)
#define CHATWS_COMPRESSION_DEDICATED 1

/* Rate-limit policies (chatws_options.rate_limit_policy). */
#define CHATWS_RATE_CLOSE 0
#define CHATWS_RATE_DROP 1

/* Fill *opts with defaults and set struct_size. Any thread. */
CHATWS_API void chatws_options_init(chatws_options* opts);

/* ----------------------------------------------------------------- server */

/* Create a server, bind and listen. On success *out owns a server that the
 * caller frees with chatws_server_destroy(); the options struct and its
 * strings may be freed after the call. Returns CHATWS_EINVAL (bad option),
 * CHATWS_ESYSTEM (bind/listen failed, e.g. address in use), CHATWS_ESTORAGE
 * (history store unusable) or CHATWS_ENOMEM; then *out is NULL. Any thread. */
CHATWS_API int chatws_server_create(const chatws_options* opts, chatws_server** out);

/* Close every connection (close 1001, then TCP close; on_close runs for
 * each, on the calling thread, with the server still usable: see
 * "Callbacks and re-entrancy"), flush history and free the server. NULL is
 * a no-op. Call it once no thread is inside run/poll, from any thread (the
 * calling thread is the loop thread while it runs). From a callback, or
 * while another thread is inside run/poll, it does nothing (the server
 * stays valid; chatws_last_error() says why). */
CHATWS_API void chatws_server_destroy(chatws_server* server);

/* The port the server listens on (the real one when 0 was asked). Any thread. */
CHATWS_API int chatws_server_port(const chatws_server* server);

/* A file descriptor that becomes readable when chatws_server_poll() has work
 * to do (new events, output sent from the polling thread between polls, or
 * output an earlier poll left for the next iteration), for hosts that run
 * their own event loop (select/poll/epoll, asyncio's add_reader). Owned by
 * the server. Any thread. */
CHATWS_API int chatws_server_fd(const chatws_server* server);
/* With threads > 1 there is no such descriptor: CHATWS_ESTATE (see
 * chatws_last_error()). */

/* Run the loop on the calling thread until chatws_server_stop() completes
 * (threads > 1: every loop, loop 0 on the calling thread and the others on
 * threads started here and joined before it returns).
 * Returns CHATWS_OK after a stop (at once if it had stopped already),
 * CHATWS_ESTATE if a thread has the loop (see "Threads"; from a callback
 * too), CHATWS_ESYSTEM if epoll fails, CHATWS_ENOMEM (see below).
 *
 * Out of memory (run and poll): while handling one connection's input, that
 * connection is closed (close 1011, or HTTP 500 before its upgrade; a line
 * at CHATWS_LOG_ERROR) and the iteration goes on. Elsewhere in an iteration
 * (queued commands, timers, on_drain/on_close, the chat's delivery) the
 * call returns CHATWS_ENOMEM with the loop's state consistent: calling
 * run/poll again goes on where it stopped, without repeating a queued
 * command or a delivery; the chat messages of a delivery cut short are kept
 * in the history but not all members may have been sent them. */
CHATWS_API int chatws_server_run(chatws_server* server);

/* Run one loop iteration on the calling thread, waiting at most timeout_ms
 * for events (0: don't wait, -1: wait indefinitely), and make it the owner
 * thread. Returns the number of events handled (>= 0), CHATWS_ESTOPPED once
 * the server has stopped, CHATWS_ESTATE (nothing done) if a thread has the
 * loop: another thread inside run/poll or in a loop-thread call between its
 * polls, or this thread, from a callback (the loop is never re-entered),
 * CHATWS_ESYSTEM, CHATWS_ENOMEM (see chatws_server_run). With threads > 1:
 * CHATWS_ESTATE, nothing done (each loop runs on its own thread: use
 * chatws_server_run()). */
CHATWS_API int chatws_server_poll(chatws_server* server, int timeout_ms);

/* Begin a graceful stop: stop accepting, send close 1001 to every client,
 * wait up to drain_timeout_ms for their replies and queued output, flush the
 * history, then run/poll return. Any thread; idempotent. Returns CHATWS_OK or
 * CHATWS_EINVAL. */
CHATWS_API int chatws_server_stop(chatws_server* server);

/* Nonzero once the server has fully stopped. Any thread. */
CHATWS_API int chatws_server_stopped(const chatws_server* server);

/* Load a new TLS certificate chain and key for the connections that start
 * from now on; connections already open keep the certificate they started
 * with. cert_file and key_file NULL: the files in use, read again (the
 * renewal case: certbot or cert-manager replaced them in place);
 * key_passphrase as in chatws_options (NULL: unchanged when the files are
 * unchanged, none otherwise). The files are read before the call returns;
 * the strings may be freed afterwards. Session tickets stay valid. Any
 * thread (e.g. a thread that took SIGHUP). Returns CHATWS_OK, CHATWS_EINVAL
 * (the pair does not load: chatws_last_error() names the file and gives
 * OpenSSL's reason, and the pair in use stays in use), CHATWS_ESTATE (the
 * server was created without TLS). */
CHATWS_API int chatws_server_reload_tls(chatws_server* server, const char* cert_file,
                                        const char* key_file, const char* key_passphrase);

/* ------------------------------------------------------------------ stats */

/* Reasons of chatws_stats.handshakes_rejected[]: a request that could have
 * become a WebSocket answered with an HTTP error instead. */
#define CHATWS_REJECT_LIMIT 0       /* max_connections, max_connections_per_ip (503) */
#define CHATWS_REJECT_ORIGIN 1      /* Origin not in allowed_origins (403) */
#define CHATWS_REJECT_PATH 2        /* outside websocket_path_prefix (404) */
#define CHATWS_REJECT_BAD_REQUEST 3 /* malformed head, not an upgrade (400, 405, 426, 431) */
#define CHATWS_REJECT_TIMEOUT 4     /* head (or TLS handshake) not done within handshake_timeout_ms */
#define CHATWS_REJECT_SHUTDOWN 5    /* the server is stopping (503) */
#define CHATWS_REJECT_HANDLER 6     /* refused by the chat (bad room name, too many rooms) */
#define CHATWS_REJECT_HOOK 7        /* refused by the host's upgrade hook */
#define CHATWS_REJECT_RATE 8        /* refused by a handshake rate limit */
#define CHATWS_REJECT_SLOTS 16      /* size of the array: later reasons use the free slots */

/* chatws_stats.closes[i] counts WebSocket closes reported to on_close with
 * code CHATWS_STATS_CLOSE_CODES[i]; index CHATWS_STATS_CLOSE_OTHER counts
 * every other code. */
#define CHATWS_STATS_CLOSE_CODES {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1013}
#define CHATWS_STATS_CLOSE_OTHER 11
#define CHATWS_STATS_CLOSE_SLOTS 16

/* A latency histogram: buckets[i] counts the observations of at most
 * CHATWS_HISTOGRAM_BOUNDS_NS[i] nanoseconds (and more than the bound
 * before it; not cumulative), buckets[CHATWS_HISTOGRAM_BOUNDS] those above
 * the last bound. */
#define CHATWS_HISTOGRAM_BOUNDS 14
#define CHATWS_HISTOGRAM_BOUNDS_NS {50000, 100000, 250000, 500000, 1000000, 2500000, \
    5000000, 10000000, 25000000, 50000000, 100000000, 250000000, 1000000000, 5000000000}
typedef struct chatws_histogram {
  uint64_t count;
  uint64_t sum_ns;
  uint64_t buckets[CHATWS_HISTOGRAM_BOUNDS + 2]; /* one spare, always 0 */
} chatws_histogram;

/* Counters (only ever grow) and gauges of a server. Initialise struct_size
 * to sizeof(chatws_stats); later versions add fields at the end only. */
typedef struct chatws_stats {
  size_t struct_size;            /* set by the caller: sizeof(chatws_stats) */
  const char* version;           /* the library's version (static string) */
  int64_t start_time_ms;         /* when the server was created, ms since the Unix epoch */
  int running;                   /* 1 until a stop begins */
  int accepting;                 /* 1 while the listener takes new connections */
  /* Gauges. */
  uint64_t websocket_connections; /* open WebSockets */
  uint64_t http_connections;     /* connections reading or answering HTTP */
  uint64_t closing_connections;  /* WebSockets closing, sockets lingering before their FIN */
  uint64_t queued_output_bytes;  /* output queued for all connections, summed at the last
                                    timer tick (at most 250 ms old while clients are
                                    connected; 0 with none) */
  /* Counters. */
  uint64_t connections_accepted; /* TCP connections accepted */
  uint64_t http_requests;        /* request heads parsed, upgrades included */
  uint64_t handshakes_accepted;  /* 101 sent */
  uint64_t handshakes_rejected[CHATWS_REJECT_SLOTS]; /* by CHATWS_REJECT_* */
  uint64_t closes[CHATWS_STATS_CLOSE_SLOTS]; /* by close code, see CHATWS_STATS_CLOSE_CODES */
  uint64_t messages_received;    /* WebSocket messages, text and binary */
  uint64_t messages_sent;        /* WebSocket data frames queued to connections (a broadcast
                                    to M receivers counts M) */
  uint64_t bytes_received;       /* read from client sockets (after TLS decryption) */
  uint64_t bytes_sent;           /* written to client sockets (before TLS encryption) */
  uint64_t broadcasts;           /* broadcast calls (the chat's room deliveries included) */
  uint64_t broadcast_deliveries; /* receivers those were queued to */
  uint64_t slow_consumer_closes; /* closed with 1008, output queue full */
  uint64_t slow_consumer_drops;  /* messages dropped under CHATWS_SLOW_DROP */
  uint64_t tls_handshakes;       /* TLS handshakes completed */
  uint64_t tls_failures;         /* TLS handshakes failed or timed out, plain HTTP on TLS */
  uint64_t log_lines_suppressed; /* by the on_log rate limit */
  uint64_t loop_iterations;
  chatws_histogram loop_iteration; /* work time of one iteration (not the wait) */
  /* Chat mode (all 0 otherwise). */
  int chat_enabled;
  int history_ok;                /* 1 unless the last history commit failed */
  uint64_t chat_rooms;           /* rooms in memory */
  uint64_t chat_members;         /* chat connections */
  uint64_t history_commits;      /* batches committed (one per loop iteration at most) */
  uint64_t history_commit_failures;
  uint64_t history_messages;     /* messages committed */
  uint64_t chat_deliveries;      /* chat messages delivered to room members: one message to a
                                    room of M counts M (a "json" client gets them folded
                                    into snapshots, one per batch) */
  chatws_histogram history_commit; /* duration of one commit to the store */
  /* Added in 0.2.0: cluster mode (chatws_options.cluster_url; all 0 otherwise). While Redis
   * is unavailable history_ok is 0 too, and /readyz answers 503. */
  int cluster_enabled;
  int cluster_up;                /* 1 while both Redis connections (commands, notifications) are up */
  uint64_t cluster_round_trips;  /* writes of queued Redis commands: the appends of a loop
                                    iteration go in one, with the reads queued by then */
  uint64_t cluster_failures;     /* lost Redis connections, failed Redis commands */
  uint64_t cluster_missed;       /* room entries trimmed from Redis before this node read them
                                    (it stopped reading longer than its heartbeat lives, or
                                    lagged beyond 64 x cluster_retention); its members were
                                    told ({"type":"dropped"}, classic: the next snapshot) */

  /* Added in 0.2.0: permessage-deflate. */
  uint64_t deflate_calls;        /* messages deflated: in the shared mode one per frame and
                                    window size, however many receivers it goes to */
  uint64_t deflate_bytes_in;     /* payload bytes those took */
  uint64_t deflate_bytes_out;    /* compressed bytes they gave */
  uint64_t compressed_messages_sent; /* data frames queued compressed (counted per receiver) */
  uint64_t inflate_bytes_in;     /* compressed payload bytes of messages received */
  uint64_t inflate_bytes_out;    /* what they inflated to */
} chatws_stats;

/* Fill *out with a consistent snapshot of the server's counters, as of the
 * end of the loop's last iteration (the loop copies them once per
 * iteration; nothing is locked or atomic on the per-message path). Fields
 * beyond out->struct_size are not written. Any thread, including while
 * another thread runs the loop. Returns CHATWS_OK, or CHATWS_EINVAL (NULL
 * server or out, struct_size below sizeof(size_t) or above 64 KiB). */
CHATWS_API int chatws_server_get_stats(const chatws_server* server, chatws_stats* out);

/* The port of the metrics listener (see chatws_options.metrics_port), or
 * CHATWS_ESTATE if the server has none (or it closed at the end of a
 * stop), CHATWS_EINVAL for NULL. Any thread. */
CHATWS_API int chatws_server_metrics_port(const chatws_server* server);

/* ---------------------------------------------------------- connections */

/* Send one message (opcode CHATWS_TEXT or CHATWS_BINARY; text must be valid
 * UTF-8) to a connection. The bytes are copied. Any thread.
 * From the loop thread returns CHATWS_OK (queued), CHATWS_QUEUED_OVER_LIMIT
 * (queued above the soft limit), CHATWS_EFULL (dropped: queue full under
 * CHATWS_SLOW_DROP), CHATWS_ENOCONN, CHATWS_ETOOBIG, CHATWS_EINVAL (bad
 * opcode or invalid UTF-8 text). From another thread returns CHATWS_OK once
 * queued for the loop (a stale id is then ignored), or CHATWS_EINVAL,
 * CHATWS_ETOOBIG, CHATWS_ESTOPPED. */
CHATWS_API int chatws_send(chatws_server* server, chatws_conn_id conn, const void* data,
                           size_t len, int opcode);

/* Send one message to every open WebSocket connection except `exclude` (0:
 * none). The frame is encoded once and shared by all receivers. Any thread.
 * From the loop thread returns the number of receivers (>= 0); from another
 * thread returns CHATWS_OK once queued. Errors: CHATWS_EINVAL,
 * CHATWS_ETOOBIG, CHATWS_ESTOPPED. */
CHATWS_API int chatws_broadcast(chatws_server* server, const void* data, size_t len,
                                int opcode, chatws_conn_id exclude);

/* Start the close handshake with `code` (1000-4999 and allowed by RFC 6455
 * section 7.4) and `reason` (UTF-8, NUL-terminated, at most 123 bytes, may be
 * NULL). on_close follows once the peer replies or close_timeout_ms passes.
 * Any thread. Returns CHATWS_OK, CHATWS_ENOCONN (loop thread only),
 * CHATWS_EINVAL (bad code or reason), CHATWS_ESTOPPED. */
CHATWS_API int chatws_close(chatws_server* server, chatws_conn_id conn, int code,
                            const char* reason);

/* Attach a host pointer to a connection (the library never dereferences it).
 * From on_open until the connection's on_close returns. Loop thread.
 * Returns CHATWS_OK, CHATWS_ENOCONN, CHATWS_ETHREAD, CHATWS_EINVAL (NULL
 * server). */
CHATWS_API int chatws_conn_set_user_data(chatws_server* server, chatws_conn_id conn,
                                         void* data);
/* The pointer set by chatws_conn_set_user_data(): until the connection's
 * on_close returns, on every close path (free it there). NULL if none, if
 * the id is stale, or from a thread that may not make loop-thread calls.
 * Loop thread. */
CHATWS_API void* chatws_conn_user_data(chatws_server* server, chatws_conn_id conn);

/* What is known about a connection, from on_open until its on_close
 * returns. The strings are owned by the library and valid until then, while
 * the caller stays on the loop thread (copy them to keep them). Initialise
 * struct_size to sizeof(chatws_conn_info). */
typedef struct chatws_conn_info {
  size_t struct_size;           /* set by the caller: sizeof(chatws_conn_info) */
  const char* remote_address;   /* "127.0.0.1" or "::1" */
  uint16_t remote_port;
  const char* path;             /* path of the upgrade request without the query string,
                                   still percent-encoded, e.g. "/rooms/lobby" */
  const char* subprotocol;      /* chosen subprotocol, "" if none */
  size_t queued_bytes;          /* output waiting to be written */
  uint64_t dropped_messages;    /* messages dropped for it under CHATWS_SLOW_DROP */
  /* Added in 0.2.0 (filled only when struct_size covers them). */
  const char* identity;         /* bound by the upgrade hook; NULL if none */
  const char* query;            /* the upgrade request's query string, as sent; "" if none */
} chatws_conn_info;

/* Fill *info for `conn`. Loop thread. Returns CHATWS_OK, CHATWS_ENOCONN,
 * CHATWS_EINVAL (NULL or struct_size too small), CHATWS_ETHREAD. */
CHATWS_API int chatws_conn_get_info(chatws_server* server, chatws_conn_id conn,
                                    chatws_conn_info* info);

/* The number of open WebSocket connections. Any thread (a snapshot). */
CHATWS_API size_t chatws_connection_count(const chatws_server* server);

/* Copy up to `cap` ids of open WebSocket connections into ids[] (ids may be
 * NULL when cap is 0). Returns the total number open (may exceed cap), or
 * CHATWS_ETHREAD. Loop thread. */
CHATWS_API int chatws_connections(chatws_server* server, chatws_conn_id* ids, size_t cap);

/* ------------------------------------------------------------------ chat */

/* Post a chat message from the host (e.g. a system notice) to `room` (""
 * for the default room) as if a client had sent it: it passes validation,
 * is stored and is broadcast. Chat mode only. Loop thread. Returns CHATWS_OK,
 * CHATWS_EINVAL (not chat mode, invalid room/user/text), CHATWS_EFULL (a new
 * room, and max_rooms rooms exist), CHATWS_ESTORAGE, CHATWS_ETHREAD,
 * CHATWS_ESTOPPED (the server has stopped, or is being destroyed). In cluster
 * mode (cluster_url) it is asynchronous: CHATWS_OK means queued while Redis
 * was up (delivered on every node once stored; a later failure goes to
 * on_log), CHATWS_ESTORAGE that Redis is unavailable. */
CHATWS_API int chatws_chat_post(chatws_server* server, const char* room, const char* user,
                                const char* text);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHATWS_H */
