// RFC 6455 framing primitives: opcodes, header encoding, masking, close
// codes. Pure functions, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace chatws::protocol {

enum class Opcode : uint8_t {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xA,
};

constexpr size_t kMaxFrameHeader = 14;        // 2 + 8 (length) + 4 (mask)
constexpr size_t kMaxControlPayload = 125;

// Writes a server (unmasked) frame header with FIN=`fin` into out[0..10) and
// returns its length (2, 4 or 10).
size_t encode_frame_header(uint8_t* out, Opcode op, uint64_t payload_len, bool fin = true);

// Writes a client (masked) frame header into out[0..14) and returns its length.
size_t encode_masked_frame_header(uint8_t* out, Opcode op, uint64_t payload_len,
                                  const uint8_t mask[4], bool fin = true);

// A whole unmasked frame (header + payload), for tests and control frames.
std::string encode_frame(Opcode op, std::string_view payload, bool fin = true);
// A whole masked frame (client side), for tests and the load generator.
std::string encode_masked_frame(Opcode op, std::string_view payload, const uint8_t mask[4],
                                bool fin = true);

// XOR `len` bytes in place with the 4-byte `mask`, where data[0] is byte
// number `offset` of the payload (so a payload can be unmasked in pieces).
// Works 8 (or more) bytes at a time.
void apply_mask(uint8_t* data, size_t len, const uint8_t mask[4], uint64_t offset);

// True if `code` may appear in a close frame on the wire (RFC 6455 7.4.1/7.4.2):
// 1000-1003, 1007-1011 (and 1012-1014, registered later), 3000-4999.
bool is_valid_close_code(uint16_t code);

// Payload of a close frame: 2-byte code + reason (reason truncated to fit 125).
std::string close_payload(uint16_t code, std::string_view reason);

}  // namespace chatws::protocol
