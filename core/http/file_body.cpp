#include "http/file_body.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace chatws::http {

FileBody& FileBody::operator=(FileBody&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    version_ = o.version_;
    offset_ = o.offset_;
    left_ = o.left_;
    o.fd_ = -1;
    o.left_ = 0;
  }
  return *this;
}

void FileBody::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  left_ = 0;
}

FileVersion file_version(const struct stat& st) {
  FileVersion v;
  v.size = static_cast<uint64_t>(st.st_size);
  v.mtime_sec = st.st_mtim.tv_sec;
  v.mtime_nsec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  v.inode = static_cast<uint64_t>(st.st_ino);
  return v;
}

bool FileBody::read_next(const iovec* iov, int n) {
  // One fstat per chunk: a file changed since its head was sent ends the
  // response short (the client sees fewer bytes than announced) instead of
  // mixing two versions under one ETag.
  struct stat st;
  if (fd_ < 0 || ::fstat(fd_, &st) != 0 || !(file_version(st) == version_)) return false;
  iovec rest[kMaxBuffers];
  if (n > kMaxBuffers) return false;
  size_t want = 0;
  for (int i = 0; i < n; ++i) {
    rest[i] = iov[i];
    want += iov[i].iov_len;
  }
  if (want > left_) return false;
  iovec* cur = rest;
  int count = n;
  while (count > 0) {
    const ssize_t got = ::preadv(fd_, cur, count, static_cast<off_t>(offset_));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;  // an error, or the end of a file that shrank
    offset_ += static_cast<uint64_t>(got);
    left_ -= static_cast<uint64_t>(got);
    size_t done = static_cast<size_t>(got);
    while (count > 0 && done >= cur->iov_len) {
      done -= cur->iov_len;
      ++cur;
      --count;
    }
    if (count > 0) {
      cur->iov_base = static_cast<char*>(cur->iov_base) + done;
      cur->iov_len -= done;
    }
  }
  return true;
}

}  // namespace chatws::http
