// rustls 0.23 (rustls-ffi, from crates.io, built by rustls_shim/ with
// cargo), once with each crypto provider it ships, ring and aws-lc-rs. Set
// up as close to chatws's OpenSSL setup as the C API allows (TLS 1.3,
// AES-128-GCM, one ticket); the rustls calls are in rustls_glue.c.
// rustls-ffi has no ticketer call, so rustls's tickets are stateful here:
// the session lives in the server's cache (256 entries for all
// connections), not in the ticket: at 1,000 sessions that is a few dozen
// bytes of a session's figure.
#include <fstream>
#include <iterator>
#include <string>

#include "library.h"
#include "rustls_glue.h"

namespace tlslibs {
namespace {

class Rustls : public Library {
 public:
  Rustls(const char* provider, rl_provider p) : provider_(p) { name_ = std::string("rustls-") + provider; }
  ~Rustls() override { rl_config_free(cfg_); }
  const char* name() const override { return name_.c_str(); }
  bool setup(const char* cert, const char* key) override {
    const std::string chain = slurp(cert), pkey = slurp(key);
    cfg_ = rl_config_new(provider_, chain.data(), chain.size(), pkey.data(), pkey.size(), on_read, on_write);
    return cfg_ != nullptr;
  }
  void* server(Link* l) override { return rl_session_new(cfg_, true, &l->server_end); }
  void* client(Link* l) override { return rl_session_new(cfg_, false, &l->client_end); }
  int step(void* s, bool) override { return rl_step(static_cast<rl_session*>(s)); }
  bool write(void* s, const char* p, size_t n) override { return rl_write(static_cast<rl_session*>(s), p, n); }
  long read(void* s, char* p, size_t n) override { return rl_read(static_cast<rl_session*>(s), p, n); }
  void release(void* s) override { rl_session_free(static_cast<rl_session*>(s)); }

 private:
  static std::string slurp(const char* path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  }
  static size_t on_read(void* end, unsigned char* buf, size_t n) {
    return static_cast<End*>(end)->in->take(reinterpret_cast<char*>(buf), n);
  }
  static void on_write(void* end, const unsigned char* buf, size_t n) {
    static_cast<End*>(end)->out->bytes.append(reinterpret_cast<const char*>(buf), n);
  }
  rl_provider provider_;
  std::string name_;
  rl_config* cfg_ = nullptr;
};

}  // namespace

std::unique_ptr<Library> make_rustls_ring() { return std::make_unique<Rustls>("ring", RL_RING); }
std::unique_ptr<Library> make_rustls_aws_lc() { return std::make_unique<Rustls>("aws-lc-rs", RL_AWS_LC_RS); }

}  // namespace tlslibs
