#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/config_text.hpp"

using idemq::detail::redact_url;
using idemq::detail::url_has_password;
using idemq::detail::url_is_well_formed;

namespace {

// Passwords as base64 and password managers make them: each has a reserved
// character between two tokens that must not appear in any redacted text.
struct Secret {
    std::string raw;
    std::string encoded;  // percent-encoded, as a URL must carry it
};

const std::vector<Secret> kSecrets{
    {"Kq7/Zr9", "Kq7%2FZr9"}, {"Kq7@Zr9", "Kq7%40Zr9"}, {"Kq7:Zr9", "Kq7%3AZr9"},
    {"Kq7%Zr9", "Kq7%25Zr9"}, {"Kq7 Zr9", "Kq7%20Zr9"}, {"Kq7/@:% Zr9", "Kq7%2F%40%3A%25%20Zr9"},
};

void check_hidden(const std::string& shown) {
    CAPTURE(shown);
    CHECK(shown.find("Kq7") == std::string::npos);
    CHECK(shown.find("Zr9") == std::string::npos);
}

}  // namespace

TEST_CASE("an AMQP URL is shown with its password masked whatever characters the password holds") {
    CHECK(redact_url("amqp://user:s3cret@host:5672/vh") == "amqp://user:***@host:5672/vh");
    CHECK(redact_url("amqps://user:s3cret@host/%2f") == "amqps://user:***@host:5671/%2F");
    for (const auto& secret : kSecrets) {
        CAPTURE(secret.raw);
        const std::string encoded = "amqp://user:" + secret.encoded + "@host:5672/vh";
        CHECK(url_is_well_formed(encoded));
        CHECK(redact_url(encoded) == "amqp://user:***@host:5672/vh");
        // Unencoded, the password is misread: nothing of it may show.
        check_hidden(redact_url("amqp://user:" + secret.raw + "@host:5672/vh"));
    }
}

TEST_CASE("a Postgres URL is shown as its settings with the password masked") {
    CHECK(redact_url("postgresql://idemq:s3cret@127.0.0.1:5432/db?sslmode=require") ==
          "host=127.0.0.1 port=5432 dbname=db user=idemq password=*** sslmode=require");
    for (const auto& secret : kSecrets) {
        CAPTURE(secret.raw);
        const std::string encoded = "postgresql://idemq:" + secret.encoded + "@127.0.0.1:5432/db";
        CHECK(url_is_well_formed(encoded));
        CHECK(redact_url(encoded) == "host=127.0.0.1 port=5432 dbname=db user=idemq password=***");
        check_hidden(redact_url("postgresql://idemq:" + secret.raw + "@127.0.0.1:5432/db"));
        check_hidden(redact_url("postgres://h/db?user=u&password=" + secret.encoded));
    }
}

TEST_CASE("a key=value connection string is shown with its password and sslpassword masked") {
    CHECK(redact_url("host=h user=u password=s3cret dbname=d connect_timeout=5") ==
          "host=h dbname=d user=u password=*** connect_timeout=5");
    CHECK(redact_url("host=h sslpassword=s3cret") == "host=h sslpassword=***");
    CHECK(redact_url("host=h application_name='my app'") == "host=h application_name='my app'");
    for (const auto& secret : kSecrets) {
        CAPTURE(secret.raw);
        std::string quoted;
        for (const char c : secret.raw) quoted += c == '\'' || c == '\\' ? std::string{'\\', c} : std::string{c};
        check_hidden(redact_url("host=h user=u password='" + quoted + "' dbname=d"));
    }
}

TEST_CASE("text that does not parse as a connection string is never echoed") {
    for (const std::string bad :
         {"Kq7 Zr9", "amqp://user:Kq7:Zr9@host/vh", "amqp://u:p@Kq7@Zr9/vh", "postgresql://u:Kq7/Zr9@h/db",
          "postgresql://u:Kq7@Zr9@h/db", "host=h password='Kq7"}) {
        CAPTURE(bad);
        const std::string shown = redact_url(bad);
        CHECK(shown.starts_with("<unparseable"));
        CHECK(shown.find(std::to_string(bad.size()) + " bytes") != std::string::npos);
        CHECK_FALSE(url_is_well_formed(bad));
        check_hidden(shown);
    }
    CHECK(redact_url("").empty());
}

TEST_CASE("whether a connection string carries a password is read from the parsed text") {
    CHECK(url_has_password("amqp://u:p@h/v"));
    CHECK_FALSE(url_has_password("amqp://u@h/v"));
    CHECK_FALSE(url_has_password("amqp://h:5672/v"));
    CHECK(url_has_password("postgresql://u:p@h/db"));
    CHECK(url_has_password("postgresql://u@h/db?password=p"));
    CHECK(url_has_password("host=h password=p"));
    CHECK_FALSE(url_has_password("postgresql://u@h/db"));
    CHECK_FALSE(url_has_password("host=h user=u"));
    CHECK(url_has_password("host=h password='unterminated"));
}
