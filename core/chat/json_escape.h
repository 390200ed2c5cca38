// JSON string output for the chat wire formats. The input is already valid
// UTF-8 (it was validated on the way in), so only the characters JSON (and
// JavaScript) cannot carry raw are escaped; every other byte passes through.
#pragma once

#include <string>
#include <string_view>

namespace chatws::chat {

// Appends `s` as a quoted JSON string: `"` and `\` get a backslash, control
// characters below 0x20 become \b \f \n \r \t or \u00XX, DEL (0x7F) becomes
// \u007f, and U+2028 / U+2029 become \u2028 / \u2029 (legal in JSON but line
// terminators in older JavaScript, so a page that evals or inlines the text
// cannot be broken by them).
void append_json_string(std::string* out, std::string_view s);

// Appends a signed 64-bit integer in decimal.
void append_json_int(std::string* out, long long v);

}  // namespace chatws::chat
