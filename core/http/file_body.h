// The body of a static file response: an open regular file and the byte
// range still to send, read chunk by chunk as the connection drains (never
// the whole file at once). Knows nothing of sockets.
#pragma once

#include <sys/stat.h>
#include <sys/uio.h>

#include <cstdint>

#include "http/file_response.h"

namespace chatws::http {

class FileBody {
 public:
  FileBody() = default;
  // Adopts `fd`; `version` is the file as the response's head describes it.
  FileBody(int fd, const FileVersion& version, uint64_t offset, uint64_t length)
      : fd_(fd), version_(version), offset_(offset), left_(length) {}
  FileBody(FileBody&& o) noexcept { *this = static_cast<FileBody&&>(o); }
  FileBody& operator=(FileBody&& o) noexcept;
  FileBody(const FileBody&) = delete;
  FileBody& operator=(const FileBody&) = delete;
  ~FileBody() { close(); }

  static constexpr int kMaxBuffers = 8;  // per read_next()

  bool valid() const { return fd_ >= 0; }
  uint64_t left() const { return left_; }  // bytes of the range not read yet

  // Fills every buffer of `iov` (at most kMaxBuffers, together at most
  // left() bytes) with the next bytes of the range. False if the file is no
  // longer the version the head described (it shrank, grew, was rewritten
  // or replaced) or cannot be read: the response cannot be completed as
  // announced.
  bool read_next(const iovec* iov, int n);

  void close();

 private:
  int fd_ = -1;
  FileVersion version_;
  uint64_t offset_ = 0;
  uint64_t left_ = 0;
};

// The version of a file as stat() describes it.
FileVersion file_version(const struct stat& st);

}  // namespace chatws::http
