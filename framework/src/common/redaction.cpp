// Connection strings as logs, exception texts and tools may show them: read
// by the parsers that will use them (rabbitmq-c's amqp_parse_url, libpq's
// PQconninfoParse), then written back out without the secrets. A pattern
// over the raw text cannot know where a password ends: one with '/' or '@'
// leaked whole or in part.
#include <amqp.h>
#include <fmt/format.h>
#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>
#include <optional>
#include <string_view>

#include "common/config_text.hpp"

namespace idemq::detail {
namespace {

constexpr std::string_view kEncodingHint =
    "reserved characters in a password, such as / @ : % ? # and space, must be percent-encoded";

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) == b;
           });
}

bool is_amqp(std::string_view text) {
    return starts_with_nocase(text, "amqp://") || starts_with_nocase(text, "amqps://");
}

bool is_postgres_uri(std::string_view text) {
    return starts_with_nocase(text, "postgresql://") || starts_with_nocase(text, "postgres://");
}

// Percent-encodes what would make the shown URL ambiguous.
std::string url_encoded(std::string_view text) {
    std::string out;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (std::isalnum(byte) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
            out += c;
        } else {
            out += fmt::format("%{:02X}", byte);
        }
    }
    return out;
}

// A conninfo value as libpq reads it back: quoted when it has to be.
std::string conninfo_value(std::string_view value) {
    const bool plain = !value.empty() && std::none_of(value.begin(), value.end(), [](char c) {
        return c == ' ' || c == '\'' || c == '\\' || std::isspace(static_cast<unsigned char>(c)) != 0;
    });
    if (plain) return std::string(value);
    std::string out = "'";
    for (const char c : value) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

std::optional<std::string> shown_amqp(const std::string& url) {
    // amqp_parse_url decodes in place and points into its argument.
    std::string copy = url;
    amqp_connection_info info{};
    if (amqp_parse_url(copy.data(), &info) != AMQP_STATUS_OK) return std::nullopt;
    // A raw '@' left in the host is the tail of a password whose '@' was not
    // encoded.
    if (std::string_view(info.host).find('@') != std::string_view::npos) return std::nullopt;
    return fmt::format("{}://{}:***@{}:{}/{}", info.ssl != 0 ? "amqps" : "amqp", url_encoded(info.user),
                       url_encoded(info.host), info.port, url_encoded(info.vhost));
}

bool all_ports(std::string_view ports) {
    // libpq takes a comma-separated list, one per host.
    return std::all_of(ports.begin(), ports.end(),
                       [](char c) { return c == ',' || std::isdigit(static_cast<unsigned char>(c)) != 0; });
}

using Options = std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)>;

std::optional<std::string> shown_postgres(const std::string& text) {
    char* error = nullptr;
    Options options(PQconninfoParse(text.c_str(), &error), &PQconninfoFree);
    // libpq's message may quote the text it could not read: never shown.
    if (error != nullptr) PQfreemem(error);
    if (!options) return std::nullopt;
    // The settings most worth seeing first, then the rest in libpq's order.
    static constexpr std::array<std::string_view, 4> kFirst{"host", "port", "dbname", "user"};
    std::array<std::string, kFirst.size()> first;
    std::string rest;
    for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
        if (option->val == nullptr || *option->val == '\0') continue;
        const std::string_view keyword = option->keyword;
        const std::string_view value = option->val;
        // A password whose '/' or '@' was not encoded lands in the port, the
        // host or the database name: such a URL is not shown at all.
        if (keyword == "port" && !all_ports(value)) return std::nullopt;
        if ((keyword == "host" || keyword == "dbname") && value.find('@') != std::string_view::npos &&
            is_postgres_uri(text)) {
            return std::nullopt;
        }
        // libpq marks its secrets (password, sslpassword) with dispchar '*'.
        const bool secret = option->dispchar != nullptr && option->dispchar[0] == '*';
        const std::string shown = fmt::format("{}={}", keyword, secret ? "***" : conninfo_value(value));
        const auto slot = std::find(kFirst.begin(), kFirst.end(), keyword);
        if (slot != kFirst.end()) {
            first[slot - kFirst.begin()] = shown;
        } else {
            rest += (rest.empty() ? "" : " ") + shown;
        }
    }
    std::string out;
    for (const auto& part : first) {
        if (!part.empty()) out += (out.empty() ? "" : " ") + part;
    }
    if (!rest.empty()) out += (out.empty() ? "" : " ") + rest;
    return out;
}

std::optional<std::string> shown(const std::string& url) {
    if (url.empty()) return std::string();
    return is_amqp(url) ? shown_amqp(url) : shown_postgres(url);
}

}  // namespace

std::string redact_url(const std::string& url) {
    if (auto text = shown(url)) return *std::move(text);
    return fmt::format("<unparseable {}, {} bytes: {}>",
                       is_amqp(url)           ? "AMQP URL"
                       : is_postgres_uri(url) ? "Postgres URL"
                                              : "URL",
                       url.size(), kEncodingHint);
}

bool url_is_well_formed(const std::string& url) { return shown(url).has_value(); }

bool url_has_password(const std::string& url) {
    if (is_amqp(url)) {
        // rabbitmq-c fills in "guest" when the URL names no password, so the
        // text itself is asked: a ':' in the userinfo.
        const auto start = url.find("://") + 3;
        const auto at = url.rfind('@');
        return at != std::string::npos && at > start && url.find(':', start) < at;
    }
    char* error = nullptr;
    Options options(PQconninfoParse(url.c_str(), &error), &PQconninfoFree);
    if (error != nullptr) PQfreemem(error);
    if (!options) return !url.empty();  // cannot tell: assume it has one
    for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
        const bool secret = option->dispchar != nullptr && option->dispchar[0] == '*';
        if (secret && option->val != nullptr && *option->val != '\0') return true;
    }
    return false;
}

}  // namespace idemq::detail
