#include "amqp/tls.hpp"

#include <idemq/errors.hpp>

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <mutex>
#include <string_view>

#include "common/log.hpp"
#include "common/text.hpp"

namespace idemq::detail {
namespace {

// Names, subjects and alerts come from the peer: shown escaped and bounded.
constexpr std::size_t kMaxShown = 200;

std::string shown(std::string_view bytes) { return printable(bytes.substr(0, kMaxShown)); }

std::string subject_of(X509* certificate) {
    if (certificate == nullptr) return "?";
    char buffer[256] = {};
    X509_NAME_oneline(X509_get_subject_name(certificate), buffer, sizeof buffer);
    return shown(buffer);
}

// The DNS names and addresses a certificate is valid for.
std::string names_of(X509* certificate) {
    std::string out;
    const auto add = [&out](std::string_view name) { out += (out.empty() ? "" : ", ") + shown(name); };
    auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names) && out.size() < kMaxShown; ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
        if (name->type == GEN_DNS) {
            add({reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.dNSName)),
                 static_cast<std::size_t>(ASN1_STRING_length(name->d.dNSName))});
        } else if (name->type == GEN_IPADD) {
            const int length = ASN1_STRING_length(name->d.iPAddress);
            char text[INET6_ADDRSTRLEN] = {};
            if ((length == 4 || length == 16) &&
                inet_ntop(length == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(name->d.iPAddress), text,
                          sizeof text) != nullptr) {
                add(text);
            }
        }
    }
    GENERAL_NAMES_free(names);
    return out.empty() ? "no subjectAltName; subject " + subject_of(certificate) : out;
}

// What the certificate check saw during the last handshake on this thread:
// rabbitmq-c reports only "peer verification failed", and the user needs to
// know whether the CA is wrong or the certificate expired.
struct VerifyTrace {
    int error = X509_V_OK;
    int depth = 0;
    std::string subject;
    std::string leaf_names;
};
thread_local VerifyTrace verify_trace;

int trace_verification(int preverify_ok, X509_STORE_CTX* context) {
    X509* certificate = X509_STORE_CTX_get_current_cert(context);
    const int depth = X509_STORE_CTX_get_error_depth(context);
    if (depth == 0 && certificate != nullptr) verify_trace.leaf_names = names_of(certificate);
    if (preverify_ok == 0 && verify_trace.error == X509_V_OK) {
        verify_trace.error = X509_STORE_CTX_get_error(context);
        verify_trace.depth = depth;
        verify_trace.subject = subject_of(certificate);
    }
    return preverify_ok;  // rabbitmq-c decides, from the verify result
}

// OpenSSL's reason for the newest error on this thread's queue, or "".
std::string openssl_reason() {
    const unsigned long code = ERR_peek_last_error();
    if (code == 0) return "";
    const char* reason = ERR_reason_error_string(code);
    return reason != nullptr ? shown(reason) : fmt::format("OpenSSL error {:#x}", code);
}

void initialize_openssl_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        // rabbitmq-c would initialize OpenSSL lazily with the first TLS
        // socket; once, up front, on its own thread-safe initializer.
        amqp_set_initialize_ssl_library(0);
        if (amqp_initialize_ssl_library() != AMQP_STATUS_OK) throw Error("cannot initialize OpenSSL for amqps://");
    });
}

std::string trust_source(const AmqpTls& tls) {
    return tls.ca_file.empty() ? "the system trust store (IDEMQ_AMQP_CACERT is not set)"
                               : fmt::format("IDEMQ_AMQP_CACERT ({})", tls.ca_file);
}

void configure_tls(amqp_socket_t* socket, const BrokerSecurity& security) {
    const AmqpTls& tls = security.tls;
    auto* context = static_cast<SSL_CTX*>(amqp_ssl_socket_get_context(socket));
    if (amqp_ssl_socket_set_ssl_versions(socket, AMQP_TLSv1_2, AMQP_TLSvLATEST) != AMQP_STATUS_OK ||
        SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) != 1) {
        throw Error("cannot restrict amqps:// to TLS 1.2 or newer");
    }
    ERR_clear_error();
    if (tls.ca_file.empty()) {
        if (SSL_CTX_set_default_verify_paths(context) != 1) {
            throw ConfigError(
                fmt::format("cannot load the system trust store ({}); set IDEMQ_AMQP_CACERT", openssl_reason()));
        }
    } else if (amqp_ssl_socket_set_cacert(socket, tls.ca_file.c_str()) != AMQP_STATUS_OK) {
        throw ConfigError(
            fmt::format("IDEMQ_AMQP_CACERT: cannot load CA certificates from '{}': {}", tls.ca_file, openssl_reason()));
    }
    if (!tls.cert_file.empty() &&
        amqp_ssl_socket_set_key(socket, tls.cert_file.c_str(), tls.key_file.c_str()) != AMQP_STATUS_OK) {
        throw ConfigError(
            fmt::format("IDEMQ_AMQP_CERT / IDEMQ_AMQP_KEY: cannot load the client certificate '{}' with key '{}': {}",
                        tls.cert_file, tls.key_file, openssl_reason()));
    }
    amqp_ssl_socket_set_verify_peer(socket, tls.verify ? 1 : 0);
    amqp_ssl_socket_set_verify_hostname(socket, tls.verify ? 1 : 0);
    SSL_CTX_set_verify(context, SSL_CTX_get_verify_mode(context), trace_verification);
}

std::string verify_failure(const std::string& where, const AmqpTls& tls) {
    if (verify_trace.error == X509_V_OK) {
        return fmt::format("TLS to {}: the broker sent no certificate that could be checked", where);
    }
    std::string hint;
    switch (verify_trace.error) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_CERT_NOT_YET_VALID:
            hint = "the broker's certificate must be renewed (or this machine's clock is wrong)";
            break;
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_CERT_SIGNATURE_FAILURE:
            hint = fmt::format("the CA that signed it is not in {}", trust_source(tls));
            break;
        default: hint = fmt::format("trusted CAs come from {}", trust_source(tls)); break;
    }
    return fmt::format("TLS to {}: the broker's certificate ({}, depth {}) was refused: {}; {}", where,
                       verify_trace.subject, verify_trace.depth, X509_verify_cert_error_string(verify_trace.error),
                       hint);
}

}  // namespace

BrokerSecurity BrokerSecurity::of(const WorkerOptions& options) {
    return {.tls = options.amqp_tls, .auth = options.amqp_auth, .require_tls = options.require_tls};
}

AmqpAuth parse_amqp_auth(std::string_view text, std::string_view setting) {
    if (text == "plain") return AmqpAuth::plain;
    if (text == "external") return AmqpAuth::external;
    throw ConfigError(fmt::format("{} must be plain or external, got '{}'", setting, printable(text)));
}

void check_broker_security(bool amqps, const BrokerSecurity& security) {
    const AmqpTls& tls = security.tls;
    if (tls.cert_file.empty() != tls.key_file.empty()) {
        throw ConfigError("IDEMQ_AMQP_CERT and IDEMQ_AMQP_KEY go together: set both or neither");
    }
    if (security.auth == AmqpAuth::external && tls.cert_file.empty()) {
        throw ConfigError(
            "IDEMQ_AMQP_AUTH=external logs in with the client certificate: set IDEMQ_AMQP_CERT and IDEMQ_AMQP_KEY");
    }
    if (!amqps) {
        if (security.require_tls) {
            throw ConfigError(
                "IDEMQ_REQUIRE_TLS=1 refuses the broker connection: IDEMQ_AMQP_URL is amqp:// (no TLS); use amqps://");
        }
        const char* tls_setting = !tls.ca_file.empty()                  ? "IDEMQ_AMQP_CACERT"
                                  : !tls.cert_file.empty()              ? "IDEMQ_AMQP_CERT"
                                  : security.auth == AmqpAuth::external ? "IDEMQ_AMQP_AUTH=external"
                                  : !tls.verify                         ? "IDEMQ_AMQP_TLS_VERIFY"
                                                                        : nullptr;
        if (tls_setting != nullptr) {
            throw ConfigError(fmt::format(
                "{} is set but IDEMQ_AMQP_URL is amqp://, which does not use TLS; use amqps://", tls_setting));
        }
    }
    if (amqps && !tls.verify && security.require_tls) {
        throw ConfigError(
            "IDEMQ_REQUIRE_TLS=1 refuses the broker connection: IDEMQ_AMQP_TLS_VERIFY=off turns verification off");
    }
}

void open_broker_socket(amqp_connection_state_t state, bool amqps, const std::string& host, int port,
                        const BrokerSecurity& security, timeval timeout) {
    check_broker_security(amqps, security);
    const std::string where = fmt::format("{}:{}", host, port);
    amqp_socket_t* socket = nullptr;
    if (amqps) {
        initialize_openssl_once();
        socket = amqp_ssl_socket_new(state);
        if (socket == nullptr)
            throw Error(fmt::format("cannot create a TLS socket for {}: {}", where, openssl_reason()));
        configure_tls(socket, security);
        if (!security.tls.verify) {
            log().warn(
                "TLS to {} is NOT verified (IDEMQ_AMQP_TLS_VERIFY=off): any certificate for any host is accepted, "
                "so anyone on the network path can read and change this connection",
                where);
        }
    } else {
        socket = amqp_tcp_socket_new(state);
        if (socket == nullptr) throw std::bad_alloc();
    }
    verify_trace = {};
    ERR_clear_error();
    const int status = amqp_socket_open_noblock(socket, host.c_str(), port, &timeout);
    switch (status) {
        case AMQP_STATUS_OK: return;
        case AMQP_STATUS_SSL_PEER_VERIFY_FAILED: throw BrokerError(verify_failure(where, security.tls), true);
        case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
            throw BrokerError(fmt::format("TLS to {}: the broker's certificate is not valid for host '{}' (it names: "
                                          "{}); IDEMQ_AMQP_URL must name the broker by one of those names",
                                          where, host, verify_trace.leaf_names.empty() ? "?" : verify_trace.leaf_names),
                              true);
        default:
            // Where rabbitmq-c asks OpenSSL to verify during the handshake,
            // a refused certificate fails the handshake itself.
            if (verify_trace.error != X509_V_OK) throw BrokerError(verify_failure(where, security.tls), true);
            throw BrokerError(fmt::format("AMQP connecting to {} failed: {}", where, describe_library_error(status)),
                              true);
    }
}

std::string describe_library_error(int status) {
    std::string text = amqp_error_string2(status);
    if (status != AMQP_STATUS_SSL_ERROR && status != AMQP_STATUS_SSL_CONNECTION_FAILED) return text;
    const std::string reason = openssl_reason();
    if (reason.empty()) return text;
    text += fmt::format(" ({})", reason);
    if (reason.find("certificate required") != std::string::npos) {
        text += ": the broker requires a client certificate; set IDEMQ_AMQP_CERT and IDEMQ_AMQP_KEY";
    } else if (reason.find("protocol") != std::string::npos || reason.find("version") != std::string::npos) {
        text += ": idemq speaks TLS 1.2 and 1.3 only; the broker must offer one of them";
    } else if (reason.find("unknown ca") != std::string::npos || reason.find("bad certificate") != std::string::npos) {
        text += ": the broker refused the client certificate (IDEMQ_AMQP_CERT)";
    }
    return text;
}

}  // namespace idemq::detail
