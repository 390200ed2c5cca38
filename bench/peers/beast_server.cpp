// Boost.Beast peer for the benchmark: echo or broadcast on a single-threaded
// io_context, plain tcp::socket (no per-operation timers), no deflate.
// Boost 1.74's asio/awaitable.hpp uses std::exchange without including
// <utility>; in C++20 mode it must come first.
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <deque>
#include <memory>
#include <string>
#include <unordered_set>

#include "peer_args.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

struct Message {
  std::string data;
  bool text;
};

class Session;

struct Hub {
  bool broadcast = false;
  size_t max_message_size = 0;
  std::unordered_set<Session*> sessions;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket sock, Hub& hub) : ws_(std::move(sock)), hub_(hub) {}
  ~Session() { hub_.sessions.erase(this); }

  void start() {
    ws_.read_message_max(hub_.max_message_size);
    ws_.auto_fragment(false);  // write each message as one frame
    ws_.async_accept([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->hub_.sessions.insert(self.get());
      self->read();
    });
  }

  // Broadcast: queue a shared message; Beast allows one write in flight.
  void deliver(const std::shared_ptr<const Message>& m) {
    queue_.push_back(m);
    if (queue_.size() == 1) write_next();
  }

 private:
  void read() {
    ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return;  // closed or failed: the last reference goes, and so does the session
      if (self->hub_.broadcast) {
        auto m = std::make_shared<const Message>(
            Message{beast::buffers_to_string(self->buf_.data()), self->ws_.got_text()});
        self->buf_.consume(self->buf_.size());
        for (Session* s : self->hub_.sessions) s->deliver(m);
        self->read();
      } else {
        self->echo();
      }
    });
  }

  // Echo the way Beast's own examples do: write the read buffer back, then read again.
  void echo() {
    ws_.text(ws_.got_text());
    ws_.async_write(buf_.data(), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return;
      self->buf_.consume(self->buf_.size());
      self->read();
    });
  }

  void write_next() {
    ws_.text(queue_.front()->text);
    ws_.async_write(asio::buffer(queue_.front()->data),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      if (ec) return;
                      self->queue_.pop_front();
                      if (!self->queue_.empty()) self->write_next();
                    });
  }

  websocket::stream<tcp::socket> ws_;
  beast::flat_buffer buf_;
  std::deque<std::shared_ptr<const Message>> queue_;
  Hub& hub_;
};

void accept_loop(tcp::acceptor& acc, Hub& hub) {
  acc.async_accept([&acc, &hub](beast::error_code ec, tcp::socket sock) {
    if (!ec) {
      sock.set_option(tcp::no_delay(true));
      std::make_shared<Session>(std::move(sock), hub)->start();
    }
    accept_loop(acc, hub);
  });
}

}  // namespace

int main(int argc, char** argv) {
  const peer::Args args = peer::parse_args(argc, argv, "beast_server");
  asio::io_context ioc{1};  // concurrency hint 1: a single thread, fewer locks
  Hub hub;
  hub.broadcast = args.broadcast;
  hub.max_message_size = args.max_message_size;
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(args.port));
  tcp::acceptor acc(ioc);
  acc.open(ep.protocol());
  acc.set_option(asio::socket_base::reuse_address(true));
  acc.bind(ep);
  acc.listen(4096);
  accept_loop(acc, hub);
  ioc.run();
  return 0;
}
