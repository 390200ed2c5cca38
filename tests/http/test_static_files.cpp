// StaticFiles against a real temporary directory tree, including symlinks
// that point inside and outside the root.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "http/static_files.h"
#include "protocol/http_request.h"

namespace chatws::http {
namespace {

namespace fs = std::filesystem;
using protocol::HttpRequest;

void write_file(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << content;
}

// Layout (under a fresh mkdtemp directory):
//   outside/secret.txt            not servable
//   www/                          the root
//     index.html, app.js, style.css, data.json, pic.png, noext, .hidden
//     sub/index.html, sub/page.txt, empty/ (no index)
//     link_in -> sub/page.txt     symlink staying inside
//     link_dir -> sub             directory symlink inside
//     link_out -> ../outside/secret.txt
//     link_out_dir -> ../outside
//     fifo                        a named pipe (must not block)
class StaticFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/chatws_static_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ / "www";
    write_file(base_ / "outside" / "secret.txt", "top secret");
    write_file(root_ / "index.html", "<h1>home</h1>");
    write_file(root_ / "app.js", "console.log(1)");
    write_file(root_ / "style.css", "body{}");
    write_file(root_ / "data.json", "{}");
    write_file(root_ / "pic.png", std::string("\x89PNG\r\n", 6));
    write_file(root_ / "noext", "raw");
    write_file(root_ / ".hidden", "dot");
    write_file(root_ / "sub" / "index.html", "<p>sub</p>");
    write_file(root_ / "sub" / "page.txt", "page");
    write_file(root_ / "a b.txt", "space");
    fs::create_directories(root_ / "empty");
    fs::create_symlink("sub/page.txt", root_ / "link_in");
    fs::create_symlink("sub", root_ / "link_dir");
    fs::create_symlink("../outside/secret.txt", root_ / "link_out");
    fs::create_symlink("../outside", root_ / "link_out_dir");
    ASSERT_EQ(::mkfifo((root_ / "fifo").c_str(), 0600), 0);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  StaticResponse get(const StaticFiles& sf, std::string_view path, std::string_view method = "GET",
                     bool keep_alive = true) {
    HttpRequest req;
    req.method = method;
    req.target = path;
    req.path = path.substr(0, path.find('?'));
    return sf.serve(req, keep_alive);
  }

  fs::path base_, root_;
};

std::string header(const StaticResponse& r, const std::string& name) {
  std::string key = "\r\n" + name + ": ";
  size_t at = r.head.find(key);
  if (at == std::string::npos) return "<missing>";
  size_t start = at + key.size();
  return r.head.substr(start, r.head.find("\r\n", start) - start);
}

// The head without its Date line (two heads built a second apart differ there).
std::string without_date(std::string head) {
  const size_t at = head.find("\r\nDate: ");
  if (at != std::string::npos) head.erase(at, head.find("\r\n", at + 2) - at);
  return head;
}

// Everything after the head: the in-memory text, then the file's bytes
// read through its FileBody (which the response only holds open).
std::string body_of(StaticResponse& r) {
  std::string out = r.body;
  while (r.file.left() > 0) {
    char buf[4096];
    const size_t n = size_t(std::min<uint64_t>(sizeof buf, r.file.left()));
    iovec iov{buf, n};
    if (!r.file.read_next(&iov, 1)) return out + "<read failed>";
    out.append(buf, n);
  }
  return out;
}
std::string body_of(StaticResponse&& r) { return body_of(r); }

TEST_F(StaticFilesTest, ServesIndexForRootAndDirectories) {
  StaticFiles sf(root_.string());
  auto r = get(sf, "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_of(r), "<h1>home</h1>");
  EXPECT_EQ(r.head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_EQ(header(r, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(header(r, "Content-Length"), "13");
  EXPECT_EQ(header(r, "Cache-Control"), "no-cache");
  EXPECT_EQ(header(r, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(header(r, "Connection"), "keep-alive");
  EXPECT_EQ(r.head.substr(r.head.size() - 4), "\r\n\r\n");

  EXPECT_EQ(body_of(get(sf, "/sub/")), "<p>sub</p>");
  auto sub = get(sf, "/sub");
  EXPECT_EQ(sub.status, 200);
  EXPECT_EQ(body_of(sub), "<p>sub</p>");
  EXPECT_EQ(header(sub, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(body_of(get(sf, "/index.html")), "<h1>home</h1>");
  EXPECT_EQ(get(sf, "/empty/").status, 404);
  EXPECT_EQ(get(sf, "/empty").status, 404);
}

TEST_F(StaticFilesTest, ContentTypesAndQueryIgnored) {
  StaticFiles sf(root_.string());
  EXPECT_EQ(header(get(sf, "/app.js"), "Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(header(get(sf, "/style.css?v=3"), "Content-Type"), "text/css; charset=utf-8");
  EXPECT_EQ(body_of(get(sf, "/style.css?v=3")), "body{}");
  EXPECT_EQ(header(get(sf, "/data.json"), "Content-Type"), "application/json");
  EXPECT_EQ(header(get(sf, "/pic.png"), "Content-Type"), "image/png");
  EXPECT_EQ(body_of(get(sf, "/pic.png")).size(), 6u);
  EXPECT_EQ(header(get(sf, "/noext"), "Content-Type"), "application/octet-stream");
  EXPECT_EQ(header(get(sf, "/sub/page.txt"), "Content-Type"), "text/plain; charset=utf-8");
}

TEST(StaticFilesContentType, Table) {
  struct Case {
    const char* name;
    const char* type;
  };
  const Case cases[] = {
      {"a.html", "text/html; charset=utf-8"}, {"A.HTM", "text/html; charset=utf-8"},
      {"a.css", "text/css; charset=utf-8"},   {"a.js", "text/javascript; charset=utf-8"},
      {"a.mjs", "text/javascript; charset=utf-8"}, {"a.json", "application/json"},
      {"a.png", "image/png"},                 {"a.jpg", "image/jpeg"},
      {"a.JPEG", "image/jpeg"},               {"a.gif", "image/gif"},
      {"a.svg", "image/svg+xml"},             {"favicon.ico", "image/x-icon"},
      {"a.txt", "text/plain; charset=utf-8"}, {"a.wasm", "application/wasm"},
      {"a.webp", "image/webp"},               {"a.woff2", "font/woff2"},
      {"app.js.map", "application/json"},     {"x/y.d/noext", "application/octet-stream"},
      {"a.unknown", "application/octet-stream"}, {"", "application/octet-stream"},
      {"dir.html/file", "application/octet-stream"},
  };
  for (const auto& c : cases) EXPECT_STREQ(StaticFiles::content_type(c.name), c.type) << c.name;
}

TEST_F(StaticFilesTest, HeadHasSameHeadAndNoBody) {
  StaticFiles sf(root_.string());
  auto g = get(sf, "/app.js");
  auto h = get(sf, "/app.js", "HEAD");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(without_date(h.head), without_date(g.head));
  EXPECT_TRUE(h.body.empty());
  EXPECT_FALSE(h.file.valid()) << "HEAD keeps no file open";
  auto missing = get(sf, "/nope", "HEAD");
  EXPECT_EQ(missing.status, 404);
  EXPECT_TRUE(missing.body.empty());
}

TEST_F(StaticFilesTest, OtherMethodsAre405WithAllow) {
  StaticFiles sf(root_.string());
  for (const char* m : {"POST", "PUT", "DELETE", "get"}) {
    auto r = get(sf, "/", m);
    EXPECT_EQ(r.status, 405) << m;
    EXPECT_EQ(header(r, "Allow"), "GET, HEAD");
    EXPECT_EQ(r.head.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u);
  }
}

TEST_F(StaticFilesTest, ConnectionHeaderFollowsKeepAlive) {
  StaticFiles sf(root_.string());
  EXPECT_EQ(header(get(sf, "/", "GET", false), "Connection"), "close");
  EXPECT_EQ(header(get(sf, "/missing", "GET", false), "Connection"), "close");
  EXPECT_EQ(header(get(sf, "/missing", "GET", true), "Connection"), "keep-alive");
}

TEST_F(StaticFilesTest, NotFound) {
  StaticFiles sf(root_.string());
  EXPECT_EQ(get(sf, "/missing.html").status, 404);
  EXPECT_EQ(get(sf, "/sub/missing/deeper").status, 404);
  EXPECT_EQ(get(sf, "/index.html/x").status, 404) << "file used as a directory";
  auto r = get(sf, "/missing.html");
  EXPECT_EQ(r.head.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u);
  EXPECT_EQ(header(r, "Content-Length"), std::to_string(r.body.size()));
}

TEST_F(StaticFilesTest, PercentDecoding) {
  StaticFiles sf(root_.string());
  EXPECT_EQ(body_of(get(sf, "/a%20b.txt")), "space");
  EXPECT_EQ(body_of(get(sf, "/%61pp.js")), "console.log(1)");
  EXPECT_EQ(get(sf, "/sub%2Fpage.txt").status, 404) << "encoded slash";
  EXPECT_EQ(get(sf, "/sub%2fpage.txt").status, 404);
  EXPECT_EQ(get(sf, "/bad%zzescape").status, 400);
  EXPECT_EQ(get(sf, "/bad%2").status, 400);
  EXPECT_EQ(get(sf, "/bad%").status, 400);
  EXPECT_EQ(get(sf, "/index.html%00.png").status, 400) << "encoded NUL";
  EXPECT_EQ(get(sf, "/%00").status, 400);
}

TEST_F(StaticFilesTest, TraversalIsRejected) {
  StaticFiles sf(root_.string());
  const char* attempts[] = {
      "/../outside/secret.txt",
      "/sub/../../outside/secret.txt",
      "/%2e%2e/outside/secret.txt",
      "/%2E%2e/outside/secret.txt",
      "/%2E%2E%2foutside%2fsecret.txt",
      "/..%2foutside%2fsecret.txt",
      "/sub/%2e%2e/%2e%2e/outside/secret.txt",
      "/.%2e/outside/secret.txt",
      "/./index.html",
      "/sub/./page.txt",
      "/..",
      "/.",
      "/%2e",
      "/.hidden",
      "/%2ehidden",
  };
  for (const char* a : attempts) {
    auto r = get(sf, a);
    EXPECT_TRUE(r.status == 404 || r.status == 403) << a << " -> " << r.status;
    const std::string b = body_of(r);
    EXPECT_EQ(b.find("top secret"), std::string::npos) << a;
    EXPECT_EQ(b.find("dot"), std::string::npos) << a;
  }
  EXPECT_EQ(get(sf, "/%2e%2e/outside/secret.txt").status, 404);
  EXPECT_EQ(get(sf, "/..%2foutside%2fsecret.txt").status, 404);
}

TEST_F(StaticFilesTest, SymlinkOutsideRootIs403) {
  StaticFiles sf(root_.string());
  auto r = get(sf, "/link_out");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(body_of(r).find("top secret"), std::string::npos);
  EXPECT_EQ(get(sf, "/link_out_dir/secret.txt").status, 403);
  // No index.html out there: realpath fails first, so 404 (nothing leaks).
  EXPECT_EQ(get(sf, "/link_out_dir/").status, 404);
}

TEST_F(StaticFilesTest, SymlinkInsideRootIsServed) {
  StaticFiles sf(root_.string());
  auto r = get(sf, "/link_in");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_of(r), "page");
  // The type comes from the requested name (no extension here).
  EXPECT_EQ(header(r, "Content-Type"), "application/octet-stream");
  EXPECT_EQ(body_of(get(sf, "/link_dir/page.txt")), "page");
  EXPECT_EQ(body_of(get(sf, "/link_dir/")), "<p>sub</p>");
}

TEST_F(StaticFilesTest, IndexSymlinkPointingOutsideIs403) {
  fs::create_directories(root_ / "trap");
  fs::create_symlink("../../outside/secret.txt", root_ / "trap" / "index.html");
  StaticFiles sf(root_.string());
  EXPECT_EQ(get(sf, "/trap/").status, 403);
  EXPECT_EQ(get(sf, "/trap").status, 403);
}

TEST_F(StaticFilesTest, RootGivenThroughSymlinkAndRelativeParts) {
  fs::create_symlink(root_, base_ / "www_link");
  StaticFiles via_link((base_ / "www_link").string());
  EXPECT_EQ(body_of(get(via_link, "/sub/page.txt")), "page");
  EXPECT_EQ(get(via_link, "/link_in").status, 200);
  StaticFiles dotted((base_ / "outside" / ".." / "www" / ".").string());
  EXPECT_EQ(get(dotted, "/").status, 200);
  EXPECT_EQ(get(dotted, "/link_out").status, 403);
}

TEST_F(StaticFilesTest, RootPrefixSiblingIsOutside) {
  // "/tmp/x/www2" starts with "/tmp/x/www" but is not inside it.
  write_file(base_ / "www2" / "f.txt", "sibling");
  fs::create_symlink("../www2/f.txt", root_ / "sib");
  StaticFiles sf(root_.string());
  EXPECT_EQ(get(sf, "/sib").status, 403);
}

TEST_F(StaticFilesTest, SpecialFilesAreNotServed) {
  StaticFiles sf(root_.string());
  auto r = get(sf, "/fifo");  // would block forever if opened for reading naively
  EXPECT_EQ(r.status, 404);
}

TEST_F(StaticFilesTest, UnreadableFileIs403) {
  write_file(root_ / "locked.txt", "x");
  fs::permissions(root_ / "locked.txt", fs::perms::none);
  fs::permissions(base_, fs::perms::owner_all | fs::perms::others_exec | fs::perms::others_read);
  fs::permissions(root_, fs::perms::owner_all | fs::perms::others_exec | fs::perms::others_read);
  StaticFiles sf(root_.string());
  // Root reads anything, so the check runs in a child that drops to an
  // unprivileged user (as a server started by root and demoted would be).
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(2);
    ::_exit(get(sf, "/locked.txt").status == 403 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: not 403, 2: could not drop privileges";
}

TEST_F(StaticFilesTest, NoRootMeansEverything404) {
  StaticFiles none("");
  EXPECT_EQ(get(none, "/").status, 404);
  EXPECT_EQ(get(none, "/index.html").status, 404);
  StaticFiles missing((base_ / "does-not-exist").string());
  EXPECT_EQ(get(missing, "/").status, 404);
  StaticFiles file_root((root_ / "index.html").string());
  EXPECT_EQ(get(file_root, "/").status, 404);
  EXPECT_EQ(get(none, "/", "POST").status, 405) << "method checked first";
}

TEST_F(StaticFilesTest, MalformedPathIs400) {
  StaticFiles sf(root_.string());
  EXPECT_EQ(get(sf, "*").status, 400);
  EXPECT_EQ(get(sf, "").status, 400);
  EXPECT_EQ(get(sf, "index.html").status, 400);
}

TEST_F(StaticFilesTest, DoubleSlashesCollapse) {
  StaticFiles sf(root_.string());
  EXPECT_EQ(body_of(get(sf, "//sub//page.txt")), "page");
}

TEST_F(StaticFilesTest, LargerBinaryFileRoundTrips) {
  std::string content(300000, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 13);
  write_file(root_ / "big.bin", content);
  StaticFiles sf(root_.string());
  auto r = get(sf, "/big.bin");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_of(r), content);
  EXPECT_EQ(header(r, "Content-Length"), "300000");
}

// The file is never read into the response: a file larger than any
// buffer (sparse here, 3 GiB) is answered with its length and held open.
TEST_F(StaticFilesTest, AFileOfAnySizeIsHeldOpenNotRead) {
  const fs::path big = root_ / "huge.bin";
  write_file(big, "");
  fs::resize_file(big, 3ull << 30);
  StaticFiles sf(root_.string());
  auto r = get(sf, "/huge.bin");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(header(r, "Content-Length"), std::to_string(3ull << 30));
  EXPECT_TRUE(r.body.empty());
  ASSERT_TRUE(r.file.valid());
  EXPECT_EQ(r.file.left(), 3ull << 30);
}

TEST_F(StaticFilesTest, RangesAndConditionalsReachTheFile) {
  StaticFiles sf(root_.string());
  HttpRequest req;
  req.method = "GET";
  req.target = req.path = "/index.html";  // "<h1>home</h1>"
  req.headers = {{"Range", "bytes=4-7"}};
  auto part = sf.serve(req, true);
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(header(part, "Content-Range"), "bytes 4-7/13");
  EXPECT_EQ(body_of(part), "home");

  const std::string etag = header(get(sf, "/index.html"), "ETag");
  ASSERT_EQ(etag.front(), '"');
  req.headers = {{"If-None-Match", etag}};
  auto same = sf.serve(req, true);
  EXPECT_EQ(same.status, 304);
  EXPECT_FALSE(same.file.valid());
  EXPECT_EQ(body_of(same), "");

  req.headers = {{"Range", "bytes=13-"}};
  auto past = sf.serve(req, true);
  EXPECT_EQ(past.status, 416);
  EXPECT_EQ(header(past, "Content-Range"), "bytes */13");
  EXPECT_FALSE(past.file.valid());

  // Rewritten: a new ETag, so the old one no longer matches.
  write_file(root_ / "index.html", "<h1>HOME</h1>");
  const timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (root_ / "index.html").c_str(), times, 0), 0);
  req.headers = {{"If-None-Match", etag}};
  auto changed = sf.serve(req, true);
  EXPECT_EQ(changed.status, 200);
  EXPECT_NE(header(changed, "ETag"), etag);
  EXPECT_EQ(body_of(changed), "<h1>HOME</h1>");
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7) ^ (i >> 9));
  return s;
}

// A file that shrinks, or is rewritten, after its head was built: the body
// refuses to go on (the response would not match its head) instead of
// returning short or mixed data.
TEST_F(StaticFilesTest, FileBodyStopsWhenTheFileShrinks) {
  const std::string content = pattern(300000);
  write_file(root_ / "f.bin", content);
  StaticFiles sf(root_.string());
  auto r = get(sf, "/f.bin");
  ASSERT_TRUE(r.file.valid());
  char buf[4096];
  iovec iov{buf, sizeof buf};
  ASSERT_TRUE(r.file.read_next(&iov, 1));
  EXPECT_EQ(std::string(buf, sizeof buf), content.substr(0, sizeof buf));
  fs::resize_file(root_ / "f.bin", 1000);
  EXPECT_FALSE(r.file.read_next(&iov, 1));
}

TEST_F(StaticFilesTest, FileBodyStopsWhenTheFileIsRewritten) {
  const std::string content = pattern(300000);
  write_file(root_ / "f.bin", content);
  StaticFiles sf(root_.string());
  auto r = get(sf, "/f.bin");
  ASSERT_TRUE(r.file.valid());
  char a[1000], b[2000];
  iovec two[2] = {{a, sizeof a}, {b, sizeof b}};
  ASSERT_TRUE(r.file.read_next(two, 2));  // buffers filled in order
  EXPECT_EQ(std::string(a, sizeof a) + std::string(b, sizeof b), content.substr(0, 3000));
  EXPECT_EQ(r.file.left(), content.size() - 3000);
  {
    std::fstream f(root_ / "f.bin", std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(100000);
    f << "changed";
  }
  // Same size; the time is set apart explicitly (a rewrite within the
  // file system's timestamp granularity would keep it).
  const timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (root_ / "f.bin").c_str(), times, 0), 0);
  EXPECT_FALSE(r.file.read_next(two, 1));
}

// Replaced by a rename: the open file is still the old one, so the
// response stays consistent with its head.
TEST_F(StaticFilesTest, FileBodyOfAReplacedFileIsTheOldFile) {
  const std::string content = pattern(50000);
  write_file(root_ / "f.bin", content);
  StaticFiles sf(root_.string());
  auto r = get(sf, "/f.bin");
  write_file(root_ / "new.bin", "new");
  fs::rename(root_ / "new.bin", root_ / "f.bin");
  EXPECT_EQ(body_of(r), content);
}

TEST_F(StaticFilesTest, EndToEndThroughTheParser) {
  StaticFiles sf(root_.string());
  protocol::HttpRequestParser p;
  std::string raw = "GET /sub/page.txt?cache=1 HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(p.feed(raw.data(), raw.size()), protocol::HttpRequestParser::Result::Complete);
  auto r = sf.serve(p.request(), p.request().keep_alive());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_of(r), "page");
}

}  // namespace
}  // namespace chatws::http
