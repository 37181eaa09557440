#pragma once

#include <string>
#include <string_view>

namespace idemq::detail {

// SHA-256 of `bytes`, as 64 lowercase hex digits.
[[nodiscard]] std::string sha256_hex(std::string_view bytes);

}  // namespace idemq::detail
