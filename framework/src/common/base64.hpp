#pragma once

#include <string>
#include <string_view>

namespace idemq::detail {

// Standard base64 (RFC 4648) without line breaks, through OpenSSL.
[[nodiscard]] std::string base64_encode(std::string_view bytes);
// Throws idemq::Error for input that is not base64.
[[nodiscard]] std::string base64_decode(std::string_view text);

}  // namespace idemq::detail
