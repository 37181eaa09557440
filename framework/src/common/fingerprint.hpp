#pragma once

#include <string>
#include <string_view>

namespace idemq::detail {

// SHA-256 of `bytes`: the 32 raw bytes.
[[nodiscard]] std::string sha256(std::string_view bytes);

// SHA-256 of `bytes`, as 64 lowercase hex digits.
[[nodiscard]] std::string sha256_hex(std::string_view bytes);

// `bytes` as lowercase hex digits, two per byte.
[[nodiscard]] std::string to_hex(std::string_view bytes);

}  // namespace idemq::detail
