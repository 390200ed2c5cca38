// websocketpp peer for the benchmark: echo or broadcast, one thread,
// no logging, no thread synchronisation (concurrency::none), Boost.Asio.
#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <set>

#include "peer_args.h"

namespace {

// The stock asio config with every lock compiled out: the server runs on one thread.
struct single_thread_config : public websocketpp::config::asio {
  typedef single_thread_config type;
  typedef websocketpp::config::asio base;
  typedef websocketpp::concurrency::none concurrency_type;
  typedef websocketpp::log::basic<concurrency_type, websocketpp::log::elevel> elog_type;
  typedef websocketpp::log::basic<concurrency_type, websocketpp::log::alevel> alog_type;
  static bool const enable_multithreading = false;

  struct transport_config : public base::transport_config {
    typedef type::concurrency_type concurrency_type;
    typedef type::alog_type alog_type;
    typedef type::elog_type elog_type;
    static bool const enable_multithreading = false;
  };
  typedef websocketpp::transport::asio::endpoint<transport_config> transport_type;
};

using server = websocketpp::server<single_thread_config>;
using websocketpp::connection_hdl;

}  // namespace

int main(int argc, char** argv) {
  const peer::Args args = peer::parse_args(argc, argv, "websocketpp_server");
  server s;
  s.clear_access_channels(websocketpp::log::alevel::all);
  s.clear_error_channels(websocketpp::log::elevel::all);
  s.init_asio();
  s.set_reuse_addr(true);
  s.set_max_message_size(args.max_message_size);
  s.set_listen_backlog(4096);

  std::set<connection_hdl, std::owner_less<connection_hdl>> conns;
  s.set_open_handler([&](connection_hdl h) { conns.insert(h); });
  s.set_close_handler([&](connection_hdl h) { conns.erase(h); });
  s.set_fail_handler([&](connection_hdl h) { conns.erase(h); });
  // Once accepted (socket_init runs before the socket is open): no Nagle delay.
  s.set_tcp_post_init_handler([&s](connection_hdl h) {
    boost::system::error_code ec;
    s.get_con_from_hdl(h)->get_socket().set_option(boost::asio::ip::tcp::no_delay(true), ec);
  });

  if (args.broadcast) {
    // The library's documented broadcast: send the payload on every connection.
    s.set_message_handler([&](connection_hdl, server::message_ptr msg) {
      for (const auto& h : conns) {
        websocketpp::lib::error_code ec;
        s.send(h, msg->get_payload(), msg->get_opcode(), ec);
      }
    });
  } else {
    s.set_message_handler([&](connection_hdl h, server::message_ptr msg) {
      websocketpp::lib::error_code ec;
      s.send(h, msg->get_payload(), msg->get_opcode(), ec);
    });
  }

  s.listen(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                          static_cast<unsigned short>(args.port)));
  s.start_accept();
  s.run();
  return 0;
}
