// The certificate/context layer: every bad certificate or key fails with a
// message naming the file and OpenSSL's reason; reload keeps the old pair on
// failure; the settings (versions, ciphers) are validated.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "net/tls_context.h"
#include "support/test_certs.h"

using chatws::net::TlsConfig;
using chatws::net::TlsContext;
using chatws::test::TestCerts;

namespace {

class TlsContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(certs.ok());
    ASSERT_TRUE(certs.make_leaf("a", 0xA1));
    ASSERT_TRUE(certs.make_leaf("b", 0xB2));
  }
  TlsConfig cfg(const std::string& cert, const std::string& key) {
    TlsConfig c;
    c.cert_file = certs.file(cert);
    c.key_file = certs.file(key);
    return c;
  }
  // create() fails and the message contains every one of `parts`.
  void expect_fails(const TlsConfig& c, std::initializer_list<std::string> parts) {
    std::string err;
    auto ctx = TlsContext::create(c, &err);
    EXPECT_EQ(ctx, nullptr);
    for (const auto& p : parts) EXPECT_NE(err.find(p), std::string::npos) << "'" << p << "' not in: " << err;
  }
  TestCerts certs;
};

TEST_F(TlsContextTest, GoodPairLoads) {
  std::string err;
  auto ctx = TlsContext::create(cfg("a.pem", "a.key"), &err);
  ASSERT_NE(ctx, nullptr) << err;
  SSL* ssl = ctx->new_ssl();
  ASSERT_NE(ssl, nullptr);
  SSL_free(ssl);
}

TEST_F(TlsContextTest, MissingCertificateNamesTheFile) {
  expect_fails(cfg("nope.pem", "a.key"), {certs.file("nope.pem"), "No such file or directory"});
}

TEST_F(TlsContextTest, MissingKeyNamesTheFile) {
  expect_fails(cfg("a.pem", "nope.key"), {certs.file("nope.key"), "No such file or directory"});
}

TEST_F(TlsContextTest, UnreadableKeyNamesTheFile) {
  if (geteuid() == 0) {
    // root reads any file: make the path unreadable as a file instead.
    std::filesystem::create_directory(certs.file("dir.key"));
    expect_fails(cfg("a.pem", "dir.key"), {certs.file("dir.key"), "Is a directory"});
  } else {
    certs.write("locked.key", TestCerts::read(certs.file("a.key")));
    chmod(certs.file("locked.key").c_str(), 0);
    expect_fails(cfg("a.pem", "locked.key"), {certs.file("locked.key"), "Permission denied"});
  }
}

TEST_F(TlsContextTest, GarbageCertificateGivesOpenSSLReason) {
  certs.write("junk.pem", "this is not a certificate\n");
  expect_fails(cfg("junk.pem", "a.key"), {"TLS certificate file '" + certs.file("junk.pem") + "'", "no start line"});
}

TEST_F(TlsContextTest, GarbageKeyGivesOpenSSLReason) {
  certs.write("junk.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  expect_fails(cfg("a.pem", "junk.key"), {"TLS key file '" + certs.file("junk.key") + "'"});
}

TEST_F(TlsContextTest, KeyGivenAsCertificate) {
  expect_fails(cfg("a.key", "a.key"), {"TLS certificate file '" + certs.file("a.key") + "'", "no start line"});
}

TEST_F(TlsContextTest, MismatchedPairNamesBothFiles) {
  expect_fails(cfg("a.pem", "b.key"),
               {certs.file("b.key"), "does not match certificate '" + certs.file("a.pem") + "'", "key values mismatch"});
}

TEST_F(TlsContextTest, EncryptedKeyNeedsItsPassphrase) {
  ASSERT_TRUE(certs.make_leaf("enc", 0xE1, "s3cret"));
  TlsConfig c = cfg("enc.pem", "enc.key");
  // None given: no prompt, a failure that says so.
  expect_fails(c, {"TLS key file '" + certs.file("enc.key") + "' is encrypted and no passphrase was given"});
  // A wrong one: the same words whatever OpenSSL's reason (a wrong AES key
  // passes the padding check about once in 256 and fails in ASN.1 instead).
  for (int i = 0; i < 64; ++i) {
    c.key_passphrase = "pass:wrong" + std::to_string(i);
    expect_fails(c, {"TLS key file '" + certs.file("enc.key") + "' is encrypted and the passphrase does not decrypt it"});
  }
  std::string err;
  c.key_passphrase = "pass:s3cret";
  EXPECT_NE(TlsContext::create(c, &err), nullptr) << err;
  setenv("CHATWS_TEST_PASS", "s3cret", 1);
  c.key_passphrase = "env:CHATWS_TEST_PASS";
  EXPECT_NE(TlsContext::create(c, &err), nullptr) << err;
  certs.write("pass.txt", "s3cret\nignored second line\n");
  c.key_passphrase = "file:" + certs.file("pass.txt");
  EXPECT_NE(TlsContext::create(c, &err), nullptr) << err;
  c.key_passphrase = "env:CHATWS_TEST_UNSET_VARIABLE";
  expect_fails(c, {"CHATWS_TEST_UNSET_VARIABLE", "not set"});
  c.key_passphrase = "s3cret";  // no source prefix
  expect_fails(c, {"pass:TEXT"});
}

TEST_F(TlsContextTest, WeakKeyRefusedWithReason) {
  ASSERT_TRUE(certs.make_weak("weak"));
  expect_fails(cfg("weak.pem", "weak.key"), {certs.file("weak.pem"), "too small"});
}

TEST_F(TlsContextTest, SettingsAreValidated) {
  TlsConfig c = cfg("a.pem", "a.key");
  c.min_version = 11;
  expect_fails(c, {"1.2 or 1.3"});
  c.min_version = 12;
  c.ciphers = "NO-SUCH-CIPHER";
  expect_fails(c, {"TLS 1.2 cipher list 'NO-SUCH-CIPHER'"});
  c.ciphers.clear();
  c.ciphersuites = "TLS_NOPE";
  expect_fails(c, {"TLS 1.3 cipher suites 'TLS_NOPE'"});
  TlsConfig half;
  half.cert_file = certs.file("a.pem");
  expect_fails(half, {"both a certificate file and a key file"});
}

TEST_F(TlsContextTest, FailedReloadKeepsThePairInUse) {
  std::string err;
  auto ctx = TlsContext::create(cfg("a.pem", "a.key"), &err);
  ASSERT_NE(ctx, nullptr) << err;
  EXPECT_FALSE(ctx->reload(certs.file("a.pem"), certs.file("b.key"), "", &err));
  EXPECT_NE(err.find("key values mismatch"), std::string::npos) << err;
  EXPECT_FALSE(ctx->reload(certs.file("gone.pem"), certs.file("b.key"), "", &err));
  EXPECT_NE(err.find(certs.file("gone.pem")), std::string::npos) << err;
  SSL* ssl = ctx->new_ssl();
  ASSERT_NE(ssl, nullptr);
  X509* x = SSL_get_certificate(ssl);
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(ASN1_INTEGER_get(X509_get_serialNumber(x)), 0xA1);
  SSL_free(ssl);
  // A good pair replaces it; an SSL made before keeps its certificate.
  SSL* before = ctx->new_ssl();
  ASSERT_TRUE(ctx->reload(certs.file("b.pem"), certs.file("b.key"), "", &err)) << err;
  SSL* after = ctx->new_ssl();
  EXPECT_EQ(ASN1_INTEGER_get(X509_get_serialNumber(SSL_get_certificate(before))), 0xA1);
  EXPECT_EQ(ASN1_INTEGER_get(X509_get_serialNumber(SSL_get_certificate(after))), 0xB2);
  SSL_free(before);
  SSL_free(after);
}

TEST_F(TlsContextTest, ReloadWithoutNamesRereadsTheFiles) {
  std::string err;
  certs.write("live.pem", TestCerts::read(certs.file("a.pem")));
  certs.write("live.key", TestCerts::read(certs.file("a.key")));
  auto ctx = TlsContext::create(cfg("live.pem", "live.key"), &err);
  ASSERT_NE(ctx, nullptr) << err;
  // Renewal in place (certbot): the files change, the names do not.
  certs.write("live.pem", TestCerts::read(certs.file("b.pem")));
  certs.write("live.key", TestCerts::read(certs.file("b.key")));
  ASSERT_TRUE(ctx->reload("", "", "", &err)) << err;
  SSL* ssl = ctx->new_ssl();
  EXPECT_EQ(ASN1_INTEGER_get(X509_get_serialNumber(SSL_get_certificate(ssl))), 0xB2);
  SSL_free(ssl);
}

}  // namespace
