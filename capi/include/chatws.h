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
 *   thread" may be called from the loop thread (typically inside a
 *   callback), or from any single thread while no thread is running the
 *   loop; otherwise they return CHATWS_ETHREAD.
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
#define CHATWS_VERSION_MINOR 1
#define CHATWS_VERSION_PATCH 0
#define CHATWS_VERSION_STRING "0.1.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, comparable with chatws_version_number(). */
#define CHATWS_VERSION_NUMBER \
  (CHATWS_VERSION_MAJOR * 10000 + CHATWS_VERSION_MINOR * 100 + CHATWS_VERSION_PATCH)

/* The version of the library actually loaded, e.g. "0.1.0". Static string; any thread. */
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
 * After this callback the id is stale. Called once for every connection that
 * got on_open (including at chatws_server_destroy()). */
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

  /* Timeouts in milliseconds. 0 means the default; -1 disables. */
  int handshake_timeout_ms;     /* whole HTTP request must arrive within; default 10000 */
  int idle_timeout_ms;          /* no traffic for this long: the server pings, and closes with
                                   1006 if nothing arrives within another idle period;
                                   default 60000 */
  int close_timeout_ms;         /* wait for the peer's close reply; default 5000 */
  int drain_timeout_ms;         /* graceful stop: wait for close replies and output; default 5000 */

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
                                   doubles it); 0 (default): the kernel's autotuning. A small
                                   value bounds kernel memory per connection and makes a slow
                                   reader reach max_output_buffer sooner */

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
                                   TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256 */
  int tls_session_tickets;      /* session resumption by ticket: 0 (default) on, its keys
                                   rotated every 12 hours (a ticket lives 12-24 h; a reload
                                   keeps them); -1 off. ALPN always offers http/1.1 */
  chatws_log_cb on_log;         /* NULL (default): no log lines */

  /* Added in 0.2.0: access (issue 12). */
  chatws_upgrade_cb on_upgrade; /* who may connect, as whom (see chatws_upgrade_cb); NULL
                                   (default): every upgrade that passes the checks */
  /* Flood control: a token bucket per connection, max_messages_per_second
   * tokens a second up to message_burst, one per message. */
  int max_messages_per_second;  /* 0 (default): chat connections 20, raw connections no limit;
                                   > 0: this for both; -1: no limit for either. Over it, a chat
                                   message is neither stored nor delivered and the sender gets
                                   the error "rate limited: ..." (classic {"error": ...}); a raw
                                   message is handled by rate_limit_policy. Below -1: EINVAL */
  int message_burst;            /* 0 (default): chat max(40, rate), raw the rate; else >= 1 */
  int rate_limit_policy;        /* raw connections over the limit: CHATWS_RATE_CLOSE (default,
                                   close 1008 "rate limited") or CHATWS_RATE_DROP (message
                                   dropped, on_message not called) */
  uint32_t max_handshakes_per_second_per_ip; /* WebSocket upgrades per second from one
                                   address (IPv6 by ipv6_prefix_length), that many at once;
                                   beyond: HTTP 429 with Retry-After: 1. 0 (default): no limit */
} chatws_options;

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
 * each), flush history and free the server. NULL is a no-op. Must not be
 * called while a thread is inside run/poll, nor from a callback. */
CHATWS_API void chatws_server_destroy(chatws_server* server);

/* The port the server listens on (the real one when 0 was asked). Any thread. */
CHATWS_API int chatws_server_port(const chatws_server* server);

/* A file descriptor that becomes readable when chatws_server_poll() has work
 * to do (new events, output sent from the polling thread between polls, or
 * output an earlier poll left for the next iteration), for hosts that run
 * their own event loop (select/poll/epoll, asyncio's add_reader). Owned by
 * the server. Any thread. */
CHATWS_API int chatws_server_fd(const chatws_server* server);

/* Run the loop on the calling thread until chatws_server_stop() completes.
 * Returns CHATWS_OK after a stop, CHATWS_ESTATE if a thread already runs the
 * loop, CHATWS_ESYSTEM if epoll fails. */
CHATWS_API int chatws_server_run(chatws_server* server);

/* Run one loop iteration on the calling thread, waiting at most timeout_ms
 * for events (0: don't wait, -1: wait indefinitely). Returns the number of
 * events handled (>= 0), CHATWS_ESTOPPED once the server has stopped,
 * CHATWS_ESTATE if another thread runs the loop, CHATWS_ESYSTEM. */
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
 * Loop thread. Returns CHATWS_OK or CHATWS_ENOCONN. */
CHATWS_API int chatws_conn_set_user_data(chatws_server* server, chatws_conn_id conn,
                                         void* data);
/* The pointer set by chatws_conn_set_user_data() (NULL if none or stale).
 * Loop thread. */
CHATWS_API void* chatws_conn_user_data(chatws_server* server, chatws_conn_id conn);

/* What is known about a connection. The strings are owned by the library and
 * valid while the connection is open and the caller stays on the loop thread
 * (copy them to keep them). Initialise struct_size to sizeof(chatws_conn_info). */
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
 * room, and max_rooms rooms exist), CHATWS_ESTORAGE. */
CHATWS_API int chatws_chat_post(chatws_server* server, const char* room, const char* user,
                                const char* text);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHATWS_H */
