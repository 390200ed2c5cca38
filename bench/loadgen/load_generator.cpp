#include "load_generator.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>

#include "chat_codec.h"
#include "handshake_client.h"
#include "proc_stats.h"
#include "protocol/deflate_codec.h"
#include "protocol/frame.h"

namespace chatws::bench {
namespace {

namespace proto = chatws::protocol;

// --deflate: what a browser offers, and no context kept on our side.
constexpr std::string_view kDeflateOffer = "permessage-deflate; client_no_context_takeover";

constexpr size_t kReadBuffer = 256 * 1024;
constexpr int kMaxEvents = 1024;
constexpr int kMaxReadsPerEvent = 8;  // fairness: then the next connection's turn
constexpr size_t kStampLen = 16;  // hex send time (ns) at the start of each payload
constexpr size_t kSenderLen = 8;  // hex index of the sending connection after it
constexpr double kDrainSeconds = 2.0;  // after the measurement: let in-flight replies land
constexpr double kCloseSeconds = 1.0;  // wait this long for the server's close replies

void put_hex(char* out, uint64_t v, size_t digits) {
  static const char kHex[] = "0123456789abcdef";
  for (size_t i = digits; i-- > 0;) {
    out[i] = kHex[v & 0xF];
    v >>= 4;
  }
}

// Parses `digits` lower-case hex digits; false if any is not one.
bool get_hex(const char* in, size_t digits, uint64_t& v) {
  v = 0;
  for (size_t i = 0; i < digits; ++i) {
    char ch = in[i];
    uint64_t d;
    if (ch >= '0' && ch <= '9') d = uint64_t(ch - '0');
    else if (ch >= 'a' && ch <= 'f') d = uint64_t(ch - 'a' + 10);
    else return false;
    v = (v << 4) | d;
  }
  return true;
}

}  // namespace

struct LoadGenerator::Conn {
  int fd = -1;
  uint32_t index = 0;
  enum State { Idle, Connecting, TlsHandshaking, Handshaking, Open, Closed } state = Idle;
  SSL* ssl = nullptr;      // --tls
  std::string key;
  std::string head;        // handshake response received so far
  std::string out;         // bytes not yet written
  size_t out_off = 0;
  bool dirty = false;
  bool blocked = false;    // the last write found the socket buffer full
  bool read_pending = false;  // more to read, queued in read_pending_
  bool close_sent = false;
  int inflight = 0;        // own messages sent and not yet received back
  std::string chat_prefix; // --chat: {"user":"lg<index>","text":" before each payload
  FrameReader reader;
  // --deflate: made on the first compressed message; keeps the server's
  // context if it uses one (dedicated mode).
  std::unique_ptr<proto::Inflater> inflater;
};

void Result::merge(const Result& o) {
  msgs += o.msgs;
  deliveries += o.deliveries;
  latency.merge(o.latency);
  opened += o.opened;
  errors += o.errors;
  unexpected_closes += o.unexpected_closes;
  if (first_error.empty()) first_error = o.first_error;
}

LoadGenerator::LoadGenerator(const Options& opts, int shard, PhaseSync* sync)
    : opts_(opts), shard_(shard), sync_(sync), read_buf_(kReadBuffer), mask_state_(std::random_device{}() | 1ull) {
  payload_template_.assign(opts_.size, 'x');
  if (opts_.deflate) {
    // Text that compresses like chat text does (about 2-3x), not like 'x's.
    static constexpr std::string_view kWords[] = {
        "hello", "the", "meeting", "is", "moved", "to", "three", "o'clock", "see", "you",
        "there", "thanks", "for", "letting", "me", "know", "what", "about", "lunch", "today"};
    uint64_t r = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < payload_template_.size();) {
      r ^= r << 13, r ^= r >> 7, r ^= r << 17;
      std::string_view w = kWords[r % 20];
      for (size_t k = 0; k < w.size() && i < payload_template_.size(); ++k) payload_template_[i++] = w[k];
      if (i < payload_template_.size()) payload_template_[i++] = ' ';
    }
  }
}

LoadGenerator::~LoadGenerator() {
  for (auto& c : conns_) {
    if (c->ssl) SSL_free(c->ssl);
    if (c->fd >= 0) ::close(c->fd);
  }
  if (epfd_ >= 0) ::close(epfd_);
  if (tls_ctx_) SSL_CTX_free(tls_ctx_);
}

namespace {
std::string ssl_reason(const char* what) {
  char buf[256] = "";
  unsigned long e = ERR_get_error();
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return std::string(what) + ": " + (e ? buf : std::strerror(errno));
}
}  // namespace

ssize_t LoadGenerator::conn_read(Conn& c, void* buf, size_t n, std::string* why) {
  if (!c.ssl) {
    for (;;) {
      ssize_t r = ::read(c.fd, buf, n);
      if (r >= 0) return r;
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return -1;
      *why = std::string("read: ") + std::strerror(errno);
      return -2;
    }
  }
  size_t got = 0;
  int rc = SSL_read_ex(c.ssl, buf, n, &got);
  if (rc == 1) return ssize_t(got);
  switch (SSL_get_error(c.ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    default:
      *why = ssl_reason("TLS read");
      return -2;
  }
}

ssize_t LoadGenerator::conn_write(Conn& c, const void* buf, size_t n, std::string* why) {
  if (!c.ssl) {
    for (;;) {
      ssize_t w = ::write(c.fd, buf, n);
      if (w >= 0) return w;
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return -1;
      *why = std::string("write: ") + std::strerror(errno);
      return -2;
    }
  }
  size_t wrote = 0;
  int rc = SSL_write_ex(c.ssl, buf, n, &wrote);
  if (rc == 1) return ssize_t(wrote);
  switch (SSL_get_error(c.ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return -1;
    default:
      *why = ssl_reason("TLS write");
      return -2;
  }
}

void LoadGenerator::tls_step(Conn& c) {
  ERR_clear_error();
  int rc = SSL_connect(c.ssl);
  if (rc == 1) {
    c.state = Conn::Handshaking;
    c.key = make_websocket_key();
    c.out += make_upgrade_request(opts_.host, opts_.port, opts_.path, c.key,
                                  opts_.chat ? kChatSubprotocol : std::string_view{},
                                  opts_.deflate ? kDeflateOffer : std::string_view{});
    mark_dirty(c);
    return;
  }
  int e = SSL_get_error(c.ssl, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;  // the next event resumes
  fail(c, ssl_reason("TLS handshake"), true);
}

bool LoadGenerator::resolve() {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(opts_.host.c_str(), nullptr, &hints, &res) != 0 || !res) {
    result_.first_error = "cannot resolve " + opts_.host;
    return false;
  }
  std::memcpy(&server_addr_, res->ai_addr, sizeof server_addr_);
  server_addr_.sin_port = htons(uint16_t(opts_.port));
  freeaddrinfo(res);
  return true;
}

bool LoadGenerator::start_connect(Conn& c) {
  c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    fail(c, std::string("socket: ") + std::strerror(errno), true);
    return false;
  }
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (opts_.source_addresses > 1) {
    // Spread connections over 127.0.0.1..K so that each source address has
    // its own ephemeral port range; the port is picked at connect().
    setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7F000001u + c.index % uint32_t(opts_.source_addresses));
    if (::bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
      fail(c, std::string("bind: ") + std::strerror(errno), true);
      return false;
    }
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &c;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
    fail(c, std::string("epoll_ctl: ") + std::strerror(errno), true);
    return false;
  }
  c.state = Conn::Connecting;
  ++connecting_;
  int rc = ::connect(c.fd, reinterpret_cast<sockaddr*>(&server_addr_), sizeof server_addr_);
  if (rc != 0 && errno != EINPROGRESS) {
    fail(c, std::string("connect: ") + std::strerror(errno), true);
    return false;
  }
  return true;  // EPOLLOUT reports the outcome
}

void LoadGenerator::on_connected(Conn& c) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    fail(c, std::string("connect: ") + std::strerror(err), true);
    return;
  }
  if (tls_ctx_) {
    c.ssl = SSL_new(tls_ctx_);
    SSL_set_fd(c.ssl, c.fd);
    c.state = Conn::TlsHandshaking;
    tls_step(c);
    return;
  }
  c.state = Conn::Handshaking;
  c.key = make_websocket_key();
  c.out += make_upgrade_request(opts_.host, opts_.port, opts_.path, c.key,
                                opts_.chat ? kChatSubprotocol : std::string_view{},
                                opts_.deflate ? kDeflateOffer : std::string_view{});
  mark_dirty(c);
}

bool LoadGenerator::open_all() {
  const uint64_t deadline = now_ns() + uint64_t(opts_.connect_timeout_s * 1e9);
  size_t next = 0;
  while (true) {
    // Keep at most connect_batch handshakes in flight so that the server's
    // listen backlog never overflows (which would turn into SYN retries).
    while (next < conns_.size() && connecting_ < opts_.connect_batch) {
      if (!start_connect(*conns_[next])) return false;
      ++next;
    }
    if (next == conns_.size() && connecting_ == 0) break;
    if (result_.errors) return false;
    if (now_ns() > deadline) {
      result_.first_error = "timed out opening connections (" + std::to_string(open_) + " of " +
                            std::to_string(conns_.size()) + " open)";
      ++result_.errors;
      return false;
    }
    poll_once(50);
  }
  return open_ == int(conns_.size());
}

void LoadGenerator::mark_dirty(Conn& c) {
  if (!c.dirty) {
    c.dirty = true;
    dirty_.push_back(&c);
  }
}

void LoadGenerator::flush(Conn& c) {
  c.blocked = false;
  while (c.out_off < c.out.size()) {
    std::string why;
    ssize_t n = conn_write(c, c.out.data() + c.out_off, c.out.size() - c.out_off, &why);
    if (n > 0) {
      c.out_off += size_t(n);
    } else if (n == -1) {
      c.blocked = true;
      return;  // EPOLLOUT (edge-triggered) resumes
    } else {
      fail(c, why.empty() ? "write: 0 bytes" : why, c.state != Conn::Closed);
      return;
    }
  }
  c.out.clear();
  c.out_off = 0;
}

void LoadGenerator::flush_dirty() {
  // What on_event did not already write (e.g. after a read_pending turn).
  for (Conn* c : dirty_) {
    c->dirty = false;
    if (c->fd >= 0) flush(*c);
  }
  dirty_.clear();
}

void LoadGenerator::send_data(Conn& c) {
  const size_t hdr_at = c.out.size();
  uint8_t mask[4];
  mask_state_ ^= mask_state_ << 13;
  mask_state_ ^= mask_state_ >> 7;
  mask_state_ ^= mask_state_ << 17;
  std::memcpy(mask, &mask_state_, 4);
  uint8_t hdr[proto::kMaxFrameHeader];
  // --chat wraps the payload as {"user":"lg<i>","text":"<payload>"}; the
  // server sends the text back inside its "msg" event.
  const size_t frame_len =
      opts_.chat ? c.chat_prefix.size() + opts_.size + kChatSuffix.size() : opts_.size;
  size_t hlen = proto::encode_masked_frame_header(
      hdr, opts_.binary ? proto::Opcode::Binary : proto::Opcode::Text, frame_len, mask);
  c.out.append(reinterpret_cast<char*>(hdr), hlen);
  if (opts_.chat) c.out.append(c.chat_prefix);
  c.out.append(payload_template_);
  if (opts_.chat) c.out.append(kChatSuffix);
  char* frame = c.out.data() + hdr_at + hlen;
  char* p = frame + (opts_.chat ? c.chat_prefix.size() : 0);
  put_hex(p, clock_ns_, kStampLen);
  put_hex(p + kStampLen, c.index, kSenderLen);
  proto::apply_mask(reinterpret_cast<uint8_t*>(frame), frame_len, mask, 0);
  ++c.inflight;
  mark_dirty(c);
}

void LoadGenerator::send_control(Conn& c, uint8_t opcode, std::string_view payload) {
  uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  std::string frame =
      proto::encode_masked_frame(static_cast<proto::Opcode>(opcode), payload, mask);
  c.out += frame;
  mark_dirty(c);
}

void LoadGenerator::fail(Conn& c, const std::string& why, bool is_error) {
  if (is_error) {
    ++result_.errors;
    if (result_.first_error.empty()) result_.first_error = why;
  }
  if (c.state == Conn::Connecting || c.state == Conn::TlsHandshaking ||
      c.state == Conn::Handshaking)
    --connecting_;
  if (c.state == Conn::Open) --open_;
  c.state = Conn::Closed;
  if (c.ssl) {
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
  if (c.fd >= 0) {
    ::close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
  }
}

void LoadGenerator::on_handshake_bytes(Conn& c, const uint8_t* data, size_t len) {
  c.head.append(reinterpret_cast<const char*>(data), len);
  HandshakeCheck hc = check_upgrade_response(c.head, c.key);
  if (hc.status == HandshakeCheck::Incomplete) return;
  if (hc.status == HandshakeCheck::Failed) {
    fail(c, "handshake: " + hc.error, true);
    return;
  }
  c.state = Conn::Open;
  --connecting_;
  ++open_;
  ++result_.opened;
  std::string rest = c.head.substr(hc.header_bytes);
  c.head.clear();
  c.head.shrink_to_fit();
  if (!rest.empty())
    on_frames(c, reinterpret_cast<const uint8_t*>(rest.data()), rest.size());
}

void LoadGenerator::on_message(Conn& c, std::string_view payload) {
  if (opts_.chat) {
    std::string_view text;
    switch (parse_chat_event(payload, &text)) {
      case ChatEvent::Msg:
        payload = text;  // then counted exactly as a broadcast delivery
        break;
      case ChatEvent::Ignored:
        return;
      case ChatEvent::Bad:
        ++result_.errors;
        if (result_.first_error.empty())
          result_.first_error = "unexpected chat event: " + std::string(payload.substr(0, 120));
        return;
    }
  }
  uint64_t stamp = 0, sender = 0;
  if (payload.size() != opts_.size || !get_hex(payload.data(), kStampLen, stamp) ||
      !get_hex(payload.data() + kStampLen, kSenderLen, sender) || sender >= uint64_t(opts_.connections)) {
    ++result_.errors;
    if (result_.first_error.empty()) result_.first_error = "unexpected message payload";
    return;
  }
  const uint64_t now = clock_ns_;
  if (counting()) {
    ++result_.deliveries;
    result_.latency.record(now > stamp ? now - stamp : 0);
  }
  const bool own = sender == c.index;
  if (opts_.mode == Mode::Echo && !own) {
    ++result_.errors;
    if (result_.first_error.empty()) result_.first_error = "echo carried another connection's message";
    return;
  }
  if (own) {
    --c.inflight;
    if (counting()) ++result_.msgs;
    if (sending_) send_data(c);
  }
}

void LoadGenerator::on_frames(Conn& c, const uint8_t* data, size_t len) {
  bool closed = false;
  bool ok = c.reader.feed(data, len, [&](FrameReader::Event ev, uint8_t, std::string_view p) {
    switch (ev) {
      case FrameReader::Event::Message:
        if (c.reader.compressed()) {
          // Broadcast receivers that do not publish count the delivery
          // without inflating it: one client core cannot inflate what the
          // server fans out, and the server's work is what is measured.
          // Latency then comes from the publishers' own copies.
          if (opts_.mode == Mode::Broadcast && int(c.index) >= opts_.publishers) {
            if (counting()) ++result_.deliveries;
            break;
          }
          if (!c.inflater) c.inflater = std::make_unique<proto::Inflater>(15, true);
          if (c.inflater->inflate_message(reinterpret_cast<const uint8_t*>(p.data()), p.size(),
                                          opts_.size + (64u << 10), &inflated_) !=
              proto::Inflater::Result::Ok) {
            ++result_.errors;
            if (result_.first_error.empty()) result_.first_error = "compressed message does not inflate";
            break;
          }
          p = inflated_;
        }
        on_message(c, p);
        break;
      case FrameReader::Event::Ping:
        send_control(c, 0xA, p);
        break;
      case FrameReader::Event::Pong:
        break;
      case FrameReader::Event::Close:
        closed = true;
        break;
    }
  });
  if (!ok) {
    fail(c, "frame: " + c.reader.error(), true);
  } else if (closed) {
    if (c.close_sent) {
      fail(c, "", false);  // the reply to our close: done
    } else {
      // The server closed on its own: answer, then count it.
      ++result_.unexpected_closes;
      if (result_.first_error.empty()) result_.first_error = "server closed a connection";
      send_control(c, 0x8, std::string_view("\x03\xe8", 2));
      flush(c);
      fail(c, "", false);
    }
  }
}

void LoadGenerator::on_readable(Conn& c) {
  for (int reads = 0; c.fd >= 0; ++reads) {
    if (reads == kMaxReadsPerEvent) {
      // Edge-triggered: no new event comes for bytes already there, so the
      // connection is queued to be read again after the others had a turn.
      if (!c.read_pending) {
        c.read_pending = true;
        read_pending_.push_back(&c);
      }
      return;
    }
    std::string why;
    ssize_t n = conn_read(c, read_buf_.data(), read_buf_.size(), &why);
    if (n > 0) {
      // One clock read per read() rather than per message: it stamps the
      // replies sent and times the messages received in this batch (a
      // clock_gettime per message was ~9% of the generator's CPU).
      clock_ns_ = now_ns();
      if (c.state == Conn::Handshaking) on_handshake_bytes(c, read_buf_.data(), size_t(n));
      else if (c.state == Conn::Open) on_frames(c, read_buf_.data(), size_t(n));
      // drained (saves an EAGAIN read); TLS returns a record at a time
      if (!c.ssl && size_t(n) < read_buf_.size()) return;
    } else if (n == 0) {
      bool expected = c.close_sent || phase_ == Phase::Closing;
      if (!expected) {
        ++result_.unexpected_closes;
        if (result_.first_error.empty()) result_.first_error = "server closed a connection (EOF)";
      }
      fail(c, "", false);
      return;
    } else if (n == -1) {
      return;
    } else {
      fail(c, why, phase_ != Phase::Closing);
      return;
    }
  }
}

void LoadGenerator::on_event(Conn& c, uint32_t events) {
  if (c.state == Conn::Connecting) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
    if (c.state != Conn::Handshaking) return;
  } else if (c.state == Conn::TlsHandshaking) {
    tls_step(c);
    if (c.state != Conn::Handshaking) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
  // Replies go out as soon as the connection's input is handled (still one
  // write per connection per read burst): holding them to the end of an
  // iteration over ~1000 connections would leave the server idle meanwhile
  // and measure the generator's batching instead of the server.
  // (--batch-writes: only to resume a write that found the socket full.)
  if (c.fd >= 0 && c.out_off < c.out.size() &&
      (!opts_.batch_writes || (c.blocked && (events & EPOLLOUT))))
    flush(c);
}

void LoadGenerator::poll_once(int timeout_ms) {
  epoll_event evs[kMaxEvents];
  int n = epoll_wait(epfd_, evs, kMaxEvents, read_pending_.empty() ? timeout_ms : 0);
  if (!read_pending_.empty()) {
    std::vector<Conn*> again;
    again.swap(read_pending_);
    for (Conn* c : again) {
      c->read_pending = false;
      on_readable(*c);
    }
  }
  for (int i = 0; i < n; ++i) on_event(*static_cast<Conn*>(evs[i].data.ptr), evs[i].events);
  flush_dirty();
}

void LoadGenerator::drive_until(uint64_t deadline_ns) {
  while (true) {
    uint64_t now = now_ns();
    if (now >= deadline_ns) return;
    int ms = int(std::min<uint64_t>((deadline_ns - now) / 1000000 + 1, 100));
    poll_once(ms);
    if (open_ == 0 && phase_ != Phase::Closing) return;  // nothing left to drive
  }
}

void LoadGenerator::close_all() {
  phase_ = Phase::Closing;
  for (auto& c : conns_) {
    if (c->state == Conn::Open) {
      c->close_sent = true;
      send_control(*c, 0x8, std::string_view("\x03\xe8", 2));  // 1000 normal closure
    } else if (c->fd >= 0) {
      fail(*c, "", false);
    }
  }
  flush_dirty();
  const uint64_t deadline = now_ns() + uint64_t(kCloseSeconds * 1e9);
  while (open_ > 0 && now_ns() < deadline) poll_once(20);
  for (auto& c : conns_)
    if (c->fd >= 0) fail(*c, "", false);
}

Result LoadGenerator::run() {
  if (opts_.tls) {
    // A benchmark client: no verification, no resumption; buffers released
    // between records so that 10,000 idle connections stay cheap here too.
    tls_ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_mode(tls_ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                   SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(tls_ctx_, SSL_SESS_CACHE_OFF);
  }
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  const bool ready = epfd_ >= 0 && resolve();
  if (!ready) {
    ++result_.errors;
    if (result_.first_error.empty()) result_.first_error = "epoll_create1 failed";
  }
  const int shards = opts_.threads;
  conns_.reserve(size_t(opts_.connections / shards + 1));
  for (int i = shard_; ready && i < opts_.connections; i += shards) {
    conns_.push_back(std::make_unique<Conn>());
    conns_.back()->index = uint32_t(i);
    // A chat hello carries the room's history (many messages): allow more.
    conns_.back()->reader.set_deflate(opts_.deflate);
    conns_.back()->reader.set_max_message(
        opts_.chat ? std::max<uint64_t>(opts_.size * 64, 64ull << 20)
                   : std::max<uint64_t>(opts_.size, 1 << 20) + 1024);
    if (opts_.chat) conns_.back()->chat_prefix = chat_prefix(uint32_t(i));
  }

  // Boundaries (every shard passes them together): before any connection
  // opens (the idle RSS baseline), all open, start and end of the measurement.
  std::optional<ProcSample> before_open;
  if (samples_server()) before_open = sample_process(opts_.server_pid);
  if (!boundary(ready)) return result_;
  const uint64_t open0 = now_ns();
  if (!boundary(open_all())) {
    close_all();
    return result_;
  }
  // How fast the server took them in (connections per second: the accept,
  // the hand-over to a loop where there is one, the upgrade).
  result_.open_s = double(now_ns() - open0) / 1e9;
  if (before_open)
    if (auto opened = sample_process(opts_.server_pid)) result_.open_server_cpu_s = opened->cpu_s - before_open->cpu_s;

  std::optional<ProcSample> s0, s1;
  double cpu0 = 0;
  uint64_t t0 = 0;
  auto start_measuring = [&] {
    boundary(true);
    phase_ = Phase::Measuring;
    if (samples_server()) s0 = sample_process(opts_.server_pid);
    cpu0 = self_cpu_seconds();  // the process's: every shard's CPU
    t0 = now_ns();
  };
  auto stop_measuring = [&] {
    drive_until(t0 + uint64_t(opts_.duration_s * 1e9));
    const uint64_t t1 = now_ns();
    boundary(true);
    const double cpu1 = self_cpu_seconds();
    if (samples_server()) s1 = sample_process(opts_.server_pid);
    result_.measured_s = double(t1 - t0) / 1e9;
    result_.loadgen_cpu_s = cpu1 - cpu0;
    if (s0 && s1) {
      result_.have_server = true;
      result_.server_cpu_s = s1->cpu_s - s0->cpu_s;
      result_.server_rss_kb = s1->rss_kb;
    }
  };

  if (opts_.mode == Mode::Idle) {
    // Hold the connections: answer pings, nothing else. RSS is read at the end.
    start_measuring();
    stop_measuring();
    if (before_open) result_.server_rss_before_kb = before_open->rss_kb;
    close_all();
    return result_;
  }

  // Echo: every connection sends; broadcast: the first `publishers` do.
  phase_ = Phase::Warmup;
  sending_ = true;
  clock_ns_ = now_ns();
  for (auto& c : conns_)
    if (opts_.mode == Mode::Echo || int(c->index) < opts_.publishers)
      for (int w = 0; w < opts_.window; ++w) send_data(*c);
  flush_dirty();
  drive_until(now_ns() + uint64_t(opts_.warmup_s * 1e9));
  start_measuring();
  stop_measuring();

  // Stop sending and let what is in flight arrive, so that the close frames
  // do not race data (bounded: a server that lost messages cannot hang us).
  phase_ = Phase::Draining;
  sending_ = false;
  const uint64_t drain_deadline = now_ns() + uint64_t(kDrainSeconds * 1e9);
  auto inflight = [this] {
    long n = 0;
    for (auto& c : conns_)
      if (c->state == Conn::Open) n += c->inflight;
    return n;
  };
  while (inflight() > 0 && now_ns() < drain_deadline && open_ > 0) poll_once(20);
  close_all();
  return result_;
}

}  // namespace chatws::bench
