#pragma once

#include <idemq/options.hpp>

#include <amqp.h>

#include <string>
#include <string_view>

namespace idemq::detail {

// How one broker connection is secured: TLS settings, the login mechanism
// and whether anything less than verified TLS is refused. The worker, the
// relay, the DLQ tools and idemqctl all take it from the same IDEMQ_AMQP_*
// settings (WorkerOptions::from_environment).
struct BrokerSecurity {
    AmqpTls tls{};
    AmqpAuth auth = AmqpAuth::plain;
    bool require_tls = false;

    [[nodiscard]] static BrokerSecurity of(const WorkerOptions& options);
};

// "plain" or "external"; throws ConfigError naming `setting` otherwise.
[[nodiscard]] AmqpAuth parse_amqp_auth(std::string_view text, std::string_view setting);

// Throws ConfigError, naming the setting, when the settings contradict each
// other or the URL (a CA for a plain amqp:// URL, EXTERNAL without a client
// certificate) or when require_tls refuses what they describe.
void check_broker_security(bool amqps, const BrokerSecurity& security);

// A socket for `state`: plain TCP, or TLS 1.2+ with the CA, client
// certificate and verification of `security`, then opened to host:port
// (including the TLS handshake). Throws ConfigError for files that cannot be
// loaded and BrokerError (connection level) when the connection or the
// handshake fails, with the reason in words: which check refused which
// certificate, and the setting that decides it.
void open_broker_socket(amqp_connection_state_t state, bool amqps, const std::string& host, int port,
                        const BrokerSecurity& security, timeval timeout);

// amqp_error_string2(status), with OpenSSL's reason for a TLS error (the
// broker's alert, say) and a hint at the setting that fixes it when known.
[[nodiscard]] std::string describe_library_error(int status);

}  // namespace idemq::detail
