// Fuzz target: the UTF-8 validators (is_valid_utf8, utf8_code_points and the
// streaming Utf8Stream) against the independent reference decoder.
//
// Input: 4 bytes of split seed, then the bytes to validate. Checks
//   - is_valid_utf8(whole) == reference valid;
//   - utf8_code_points / count_code_points == the reference count (valid input);
//   - Utf8Stream fed the bytes in pieces fails exactly when the bytes so far
//     stop being a prefix of valid UTF-8 (fail fast, RFC 6455 8.1), never
//     earlier, and finish() == reference valid.
#include <cstdint>
#include <cstdlib>

#include "chat/chat_wire.h"
#include "fuzz_split.h"
#include "protocol/utf8.h"
#include "reference_utf8.h"

using chatws::fuzz::reference_utf8;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  chatws::fuzz::Splitter split(chatws::fuzz::take_u32(data, size, 4));
  const char* text = reinterpret_cast<const char*>(data);

  const auto ref = reference_utf8(data, size);
  if (chatws::protocol::is_valid_utf8(text, size) != ref.valid) std::abort();
  if (ref.valid) {
    if (chatws::protocol::utf8_code_points(text, size) != ref.code_points) std::abort();
    if (chatws::chat::count_code_points({text, size}) != ref.code_points) std::abort();
  }

  chatws::protocol::Utf8Stream stream;
  size_t fed = 0;
  bool failed = false;
  while (fed < size) {
    const size_t n = split.next(size - fed);
    const bool ok = stream.feed(text + fed, n);
    fed += n;
    const bool prefix_ok = reference_utf8(data, fed).valid_prefix;
    if (failed && ok) std::abort();  // once false, stays false
    if (!failed && ok != prefix_ok) std::abort();
    failed = !ok;
  }
  if (stream.finish() != ref.valid) std::abort();
  // An empty piece changes nothing.
  if (stream.feed(text, 0) != !failed) std::abort();
  return 0;
}
