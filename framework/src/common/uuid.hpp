#pragma once

#include <string>
#include <string_view>

namespace idemq::detail {

// A UUID made from the first 16 bytes of `digest` (at least 16 bytes, e.g. a
// SHA-256), marked as RFC 9562 version 8 (custom): the same digest gives
// the same UUID, in the shape receivers expect of a message id.
[[nodiscard]] std::string uuid_from_digest(std::string_view digest);

// A random RFC 9562 version 4 UUID, from OpenSSL's generator.
[[nodiscard]] std::string random_uuid();

}  // namespace idemq::detail
