// Static files under one root, GET and HEAD only.
//
// Path resolution, in this order (each step closes a way out of the root):
//   1. percent-decode the path; a malformed escape or a decoded NUL is 400;
//   2. an encoded '/' (%2F) is 404: it would let one segment hide a
//      separator from step 3;
//   3. any segment "." or ".." is 404, and so is any other segment starting
//      with '.' (hidden files such as .git or .env are never served);
//   4. realpath() the result and require it to be the root or below it
//      (root + '/'), else 403: a symlink may point anywhere inside the root
//      but never outside it;
//   5. open with O_NOFOLLOW and fstat the descriptor: only regular files are
//      served (404 otherwise), never a FIFO or device that could block.
// A directory (including "/") serves its index.html. The file is not read
// here: the response carries it open, with the byte range to send (see
// file_response.h for validators, conditionals and ranges).
// The root is trusted: concurrent renames inside it by an attacker (a race
// between realpath and open) are outside this model.
#include "http/static_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <new>

#include "http/file_response.h"
#include "protocol/handshake.h"
#include "protocol/request_view.h"

namespace chatws::http {

namespace {

// Outcome of turning the URL path into a relative file path.
struct Decoded {
  int status = 0;      // 0 on success, else the HTTP status to answer
  std::string rel;     // "a/b/c" (no leading slash), "" for the root
  bool dir = false;    // path ended in '/' (or was "/")
};

Decoded decode_path(std::string_view path) {
  Decoded d;
  if (path.empty() || path.front() != '/') {
    d.status = 400;
    return d;
  }
  std::string segment;
  auto end_segment = [&]() {
    if (segment.empty()) return true;            // "//" collapses
    if (segment.front() == '.') return false;    // ".", "..", hidden files
    if (!d.rel.empty()) d.rel.push_back('/');
    d.rel.append(segment);
    segment.clear();
    return true;
  };
  for (size_t i = 1; i < path.size(); ++i) {
    char c = path[i];
    if (c == '/') {
      if (!end_segment()) {
        d.status = 404;
        return d;
      }
      continue;
    }
    if (c == '%') {
      const int v = protocol::percent_escape(path, i);
      if (v < 0) {
        d.status = 400;
        return d;
      }
      c = static_cast<char>(v);
      i += 2;
      if (c == '\0') {
        d.status = 400;
        return d;
      }
      if (c == '/') {
        d.status = 404;
        return d;
      }
    }
    segment.push_back(c);
  }
  d.dir = segment.empty();
  if (!end_segment()) d.status = 404;
  return d;
}

bool inside(const std::string& root, const std::string& p) {
  if (root == "/") return true;
  return p.size() == root.size() ? p == root
                                 : p.size() > root.size() && p.compare(0, root.size(), root) == 0 &&
                                       p[root.size()] == '/';
}

// realpath() as a std::string; errno is set on failure.
bool resolve(const std::string& path, std::string* out) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) return false;
  out->assign(buf);
  return true;
}

int status_for_errno(int err) { return err == EACCES || err == EPERM ? 403 : 404; }

StaticResponse error(int status, bool head_only, bool keep_alive, std::string_view extra = {}) {
  StaticResponse r;
  r.status = status;
  std::string body = protocol::http_reason_phrase(status);
  body.push_back('\n');
  r.head = response_head(status, "text/plain; charset=utf-8", body.size(), keep_alive, extra);
  if (!head_only) r.body = std::move(body);
  return r;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

}  // namespace

StaticFiles::StaticFiles(std::string root) {
  if (root.empty()) return;
  std::string real;
  struct stat st;
  if (resolve(root, &real) && ::stat(real.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    root_ = std::move(real);
  }
}

const char* StaticFiles::content_type(std::string_view filename) {
  struct Entry {
    const char* ext;
    const char* type;
  };
  static constexpr Entry kTypes[] = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"json", "application/json"},
      {"map", "application/json"},
      {"txt", "text/plain; charset=utf-8"},
      {"md", "text/markdown; charset=utf-8"},
      {"xml", "application/xml"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"avif", "image/avif"},
      {"ico", "image/x-icon"},
      {"wasm", "application/wasm"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"ttf", "font/ttf"},
      {"otf", "font/otf"},
      {"pdf", "application/pdf"},
      {"mp3", "audio/mpeg"},
      {"mp4", "video/mp4"},
      {"webm", "video/webm"},
  };
  size_t slash = filename.rfind('/');
  if (slash != std::string_view::npos) filename.remove_prefix(slash + 1);
  size_t dot = filename.rfind('.');
  if (dot == std::string_view::npos) return "application/octet-stream";
  std::string_view ext = filename.substr(dot + 1);
  for (const auto& e : kTypes) {
    if (protocol::ascii_iequals(ext, e.ext)) return e.type;
  }
  return "application/octet-stream";
}

StaticResponse StaticFiles::serve(const protocol::HttpRequest& req, bool keep_alive) const {
  const bool head_only = req.method == "HEAD";
  try {
    if (req.method != "GET" && !head_only) {
      return error(405, false, keep_alive, "Allow: GET, HEAD\r\n");
    }
    if (root_.empty()) return error(404, head_only, keep_alive);

    Decoded d = decode_path(req.path);
    if (d.status != 0) return error(d.status, head_only, keep_alive);

    std::string candidate = root_;
    if (!d.rel.empty()) {
      candidate.push_back('/');
      candidate.append(d.rel);
    }
    if (d.dir) candidate.append("/index.html");

    // The type comes from the name asked for, not the symlink target's name.
    std::string type_name = candidate;
    std::string real;
    if (!resolve(candidate, &real)) return error(status_for_errno(errno), head_only, keep_alive);
    if (!inside(root_, real)) return error(403, head_only, keep_alive);

    struct stat st;
    if (::stat(real.c_str(), &st) != 0) {
      return error(status_for_errno(errno), head_only, keep_alive);
    }
    if (S_ISDIR(st.st_mode)) {
      // A directory named without a trailing slash: its index, resolved
      // and checked again (index.html may itself be a symlink).
      if (!resolve(real + "/index.html", &real)) {
        return error(status_for_errno(errno), head_only, keep_alive);
      }
      if (!inside(root_, real)) return error(403, head_only, keep_alive);
      type_name = "index.html";
    }

    Fd fd(::open(real.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (fd.get() < 0) return error(status_for_errno(errno), head_only, keep_alive);
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return error(404, head_only, keep_alive);
    }
    const FileVersion version = file_version(st);
    FileAnswer a = answer_file(req, version, content_type(type_name), keep_alive, ::time(nullptr));
    StaticResponse r;
    r.status = a.status;
    r.head = std::move(a.head);
    r.body = std::move(a.body);
    if (a.length > 0) {
      ::posix_fadvise(fd.get(), static_cast<off_t>(a.offset), static_cast<off_t>(a.length),
                      POSIX_FADV_SEQUENTIAL);
      r.file = FileBody(fd.release(), version, a.offset, a.length);
    }
    return r;
  } catch (const std::bad_alloc&) {
    return StaticResponse{500, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n", {}};
  }
}

}  // namespace chatws::http
