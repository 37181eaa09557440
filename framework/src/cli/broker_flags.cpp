#include "cli/broker_flags.hpp"

#include <idemq/errors.hpp>

namespace idemq::detail {

void BrokerFlags::add_to(CLI::App& command) {
    command.add_option("--amqp-url", url_, "AMQP URL, amqp:// or amqps:// (overrides IDEMQ_AMQP_URL)");
    command.add_option("--amqp-cacert", ca_file_,
                       "PEM file of the CAs trusted for amqps:// (overrides IDEMQ_AMQP_CACERT; default: the system "
                       "trust store)");
    command.add_option("--amqp-cert", cert_file_, "client certificate for mutual TLS (overrides IDEMQ_AMQP_CERT)");
    command.add_option("--amqp-key", key_file_, "its private key (overrides IDEMQ_AMQP_KEY)");
    command.add_option("--amqp-auth", auth_, "plain (user and password) or external (the client certificate)")
        ->check(CLI::IsMember({"plain", "external"}));
    command
        .add_option("--amqp-tls-verify", verify_,
                    "on (default) or off: off accepts any certificate (overrides IDEMQ_AMQP_TLS_VERIFY)")
        ->check(CLI::IsMember({"on", "off"}));
}

void BrokerFlags::apply(WorkerOptions& options) const {
    if (url_) options.amqp_url = *url_;
    if (ca_file_) options.amqp_tls.ca_file = *ca_file_;
    if (cert_file_) options.amqp_tls.cert_file = *cert_file_;
    if (key_file_) options.amqp_tls.key_file = *key_file_;
    if (auth_) options.amqp_auth = parse_amqp_auth(*auth_, "--amqp-auth");
    if (verify_) options.amqp_tls.verify = *verify_ == "on";
}

BrokerTarget BrokerFlags::resolve() const {
    WorkerOptions options = WorkerOptions::from_environment();
    apply(options);
    if (options.amqp_url.empty()) throw ConfigError("IDEMQ_AMQP_URL (or --amqp-url) is not set");
    return {.url = options.amqp_url, .security = BrokerSecurity::of(options)};
}

}  // namespace idemq::detail
