// Certificates for TLS tests, made at test time with the openssl CLI (no
// key is ever committed): a test CA, and leaf certificates for 127.0.0.1 /
// localhost signed by it, each with a chosen serial so a test can tell
// which certificate a handshake presented.
#pragma once

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "chat/temp_dir.h"

namespace chatws::test {

class TestCerts {
 public:
  TestCerts() {
    ok_ = dir_.ok() && run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
                           " -keyout " + q(ca_key()) + " -out " + q(ca_cert()) +
                           " -days 2 -subj /CN=chatws-test-ca");
  }

  bool ok() const { return ok_; }
  std::string ca_cert() const { return dir_.file("ca.pem"); }
  std::string ca_key() const { return dir_.file("ca.key"); }
  std::string file(const std::string& name) const { return dir_.file(name); }

  // A leaf signed by the CA: <name>.pem (the leaf, then the CA: a chain)
  // and <name>.key. `passphrase` non-empty: the key is encrypted with it.
  bool make_leaf(const std::string& name, int serial, const std::string& passphrase = "") {
    const std::string key = file(name + ".key"), csr = file(name + ".csr"), leaf = file(name + ".leaf");
    const std::string ext = file(name + ".ext");
    std::ofstream(ext) << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                          "extendedKeyUsage=serverAuth\n";
    std::string keyopts = passphrase.empty() ? " -nodes" : " -passout pass:" + passphrase;
    if (!run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1" + keyopts + " -keyout " +
             q(key) + " -out " + q(csr) + " -subj /CN=localhost"))
      return false;
    char hex[32];
    std::snprintf(hex, sizeof hex, "0x%X", serial);
    if (!run("openssl x509 -req -in " + q(csr) + " -CA " + q(ca_cert()) + " -CAkey " + q(ca_key()) +
             " -set_serial " + hex + " -days 2 -extfile " + q(ext) + " -out " + q(leaf)))
      return false;
    std::ofstream(file(name + ".pem")) << read(leaf) << read(ca_cert());
    return true;
  }

  // A self-signed RSA certificate with a key too small for OpenSSL's
  // default security level.
  bool make_weak(const std::string& name) {
    return run("openssl req -x509 -newkey rsa:1024 -nodes -keyout " + q(file(name + ".key")) +
               " -out " + q(file(name + ".pem")) + " -days 2 -subj /CN=weak");
  }

  static std::string read(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  void write(const std::string& name, const std::string& data) const {
    std::ofstream(file(name), std::ios::binary) << data;
  }

 private:
  static std::string q(const std::string& s) { return "'" + s + "'"; }
  static bool run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

  TempDir dir_;
  bool ok_ = false;
};

}  // namespace chatws::test
