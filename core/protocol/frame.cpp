// RFC 6455 framing primitives (section 5.2 header layout, 5.3 masking,
// 7.4 close codes).
#include "protocol/frame.h"

#include <bit>
#include <cstring>

namespace chatws::protocol {

namespace {

// Byte 1 of the header (mask bit excluded) plus the extended length bytes.
size_t write_length(uint8_t* out, uint64_t len) {
  if (len < 126) {
    out[0] = static_cast<uint8_t>(len);
    return 1;
  }
  if (len <= 0xFFFF) {
    out[0] = 126;
    out[1] = static_cast<uint8_t>(len >> 8);
    out[2] = static_cast<uint8_t>(len);
    return 3;
  }
  out[0] = 127;
  for (int i = 0; i < 8; ++i) out[1 + i] = static_cast<uint8_t>(len >> (56 - 8 * i));
  return 9;
}

// Largest prefix of `s` no longer than `max` that does not end inside a UTF-8
// sequence, so a truncated close reason stays valid UTF-8 for the peer.
size_t utf8_safe_prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return s.size();
  size_t n = max;
  // Back up over continuation bytes to the start of the sequence that the
  // cut would split (at most 3 of them in valid UTF-8).
  while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

}  // namespace

size_t encode_frame_header(uint8_t* out, Opcode op, uint64_t payload_len, bool fin) {
  out[0] = static_cast<uint8_t>((fin ? 0x80 : 0x00) | static_cast<uint8_t>(op));
  return 1 + write_length(out + 1, payload_len);
}

size_t encode_masked_frame_header(uint8_t* out, Opcode op, uint64_t payload_len,
                                  const uint8_t mask[4], bool fin) {
  size_t n = encode_frame_header(out, op, payload_len, fin);
  out[1] |= 0x80;
  std::memcpy(out + n, mask, 4);
  return n + 4;
}

std::string encode_frame(Opcode op, std::string_view payload, bool fin) {
  uint8_t hdr[kMaxFrameHeader];
  size_t h = encode_frame_header(hdr, op, payload.size(), fin);
  std::string out;
  out.reserve(h + payload.size());
  out.append(reinterpret_cast<const char*>(hdr), h);
  out.append(payload);
  return out;
}

std::string encode_masked_frame(Opcode op, std::string_view payload, const uint8_t mask[4],
                                bool fin) {
  uint8_t hdr[kMaxFrameHeader];
  size_t h = encode_masked_frame_header(hdr, op, payload.size(), mask, fin);
  std::string out;
  out.reserve(h + payload.size());
  out.append(reinterpret_cast<const char*>(hdr), h);
  out.append(payload);
  apply_mask(reinterpret_cast<uint8_t*>(out.data()) + h, payload.size(), mask, 0);
  return out;
}

void apply_mask(uint8_t* data, size_t len, const uint8_t mask[4], uint64_t offset) {
  // The mask rotated so that its first byte applies to data[0], repeated to
  // 8 bytes (as bytes in rot, as a word in m).
  uint8_t rot[8];
  uint64_t m;
  if constexpr (std::endian::native == std::endian::little) {
    // Byte j of a little-endian word is bits 8j..8j+7: a rotate right by
    // 8 * offset brings mask[offset & 3] to byte 0. (This runs per frame.)
    uint32_t k;
    std::memcpy(&k, mask, 4);
    k = std::rotr(k, int(8 * (offset & 3)));
    m = uint64_t(k) | (uint64_t(k) << 32);
    std::memcpy(rot, &m, 8);
  } else {
    for (size_t i = 0; i < 8; ++i) rot[i] = mask[(offset + i) & 3];
    std::memcpy(&m, rot, 8);
  }

  size_t i = 0;
  // 32 bytes per iteration as four independent 64-bit XORs; the compiler
  // turns this into vector instructions. memcpy keeps unaligned access legal.
  for (; i + 32 <= len; i += 32) {
    uint64_t w[4];
    std::memcpy(w, data + i, 32);
    w[0] ^= m;
    w[1] ^= m;
    w[2] ^= m;
    w[3] ^= m;
    std::memcpy(data + i, w, 32);
  }
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    std::memcpy(&w, data + i, 8);
    w ^= m;
    std::memcpy(data + i, &w, 8);
  }
  // i is a multiple of 8, so rot[k] still lines up with data[i + k].
  for (size_t k = 0; i < len; ++i, ++k) data[i] ^= rot[k];
}

bool is_valid_close_code(uint16_t code) {
  // 1004-1006 and 1015 are reserved and must never be sent; 1016-2999 are
  // reserved for future RFCs; 3000-4999 are for libraries and applications.
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1014) return true;
  return code >= 3000 && code <= 4999;
}

std::string close_payload(uint16_t code, std::string_view reason) {
  size_t n = utf8_safe_prefix(reason, kMaxControlPayload - 2);
  std::string out;
  out.reserve(2 + n);
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code & 0xFF));
  out.append(reason.data(), n);
  return out;
}

}  // namespace chatws::protocol
