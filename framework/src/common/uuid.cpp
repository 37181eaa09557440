#include "common/uuid.hpp"

#include <idemq/errors.hpp>

#include <openssl/rand.h>

#include <array>

#include "common/fingerprint.hpp"

namespace idemq::detail {
namespace {

std::string format_uuid(std::array<unsigned char, 16> bytes, unsigned char version) {
    bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0FU) | (version << 4U));
    bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3FU) | 0x80U);  // the RFC variant
    const std::string hex = to_hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    return hex.substr(0, 8) + '-' + hex.substr(8, 4) + '-' + hex.substr(12, 4) + '-' + hex.substr(16, 4) + '-' +
           hex.substr(20);
}

}  // namespace

std::string uuid_from_digest(std::string_view digest) {
    if (digest.size() < 16) throw Error("a UUID needs at least 16 bytes of digest");
    std::array<unsigned char, 16> bytes{};
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(digest[i]);
    return format_uuid(bytes, 8);
}

std::string random_uuid() {
    std::array<unsigned char, 16> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) throw Error("OpenSSL RAND_bytes failed");
    return format_uuid(bytes, 4);
}

}  // namespace idemq::detail
