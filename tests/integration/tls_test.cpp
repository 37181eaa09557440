// TLS to the broker and the database against the real services of
// scripts/services (a TLS listener beside the plain one, Postgres with
// ssl=on, certificates from a throwaway CA): the payments worker over
// amqps:// and sslmode=verify-full with IDEMQ_REQUIRE_TLS=1, its DLQ tools
// over TLS, mutual TLS with EXTERNAL login, and every way a connection must
// be refused, each with a message that names what to fix. The certificates a
// real broker cannot serve at once (another host name, expired, TLS 1.1 only)
// are served by `openssl s_server`, a real TLS peer in a process of its own.
#include <doctest/doctest.h>

#include <idemq/errors.hpp>
#include <idemq/options.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "amqp/connection.hpp"
#include "payments_worker.hpp"
#include "support.hpp"

namespace {

std::string required_env(const char* name) {
    const char* value = std::getenv(name);
    REQUIRE_MESSAGE(value != nullptr, name << " is not set: run the tests through scripts/test, or eval \"$("
                                              "scripts/services env)\" first");
    return value;
}

std::string tls_file(const std::string& name) { return required_env("IDEMQ_SERVICES_TLS_DIR") + "/" + name; }

// `plain` (amqp://user:password@127.0.0.1:<port>/<vhost>) at the TLS
// listener, named as its certificate names it.
std::string amqps_url(const std::string& plain, int port = 0) {
    const auto at = plain.find('@');
    const auto slash = plain.find('/', at);
    REQUIRE((plain.starts_with("amqp://") && at != std::string::npos && slash != std::string::npos));
    const std::string port_text = port != 0 ? std::to_string(port) : required_env("IDEMQ_SERVICES_AMQPS_PORT");
    return "amqps://" + plain.substr(7, at - 7) + "@localhost:" + port_text + plain.substr(slash);
}

std::string verified_database_url(const std::string& plain) {
    return plain + "?sslmode=verify-full&sslrootcert=" + tls_file("ca.pem");
}

idemq::detail::BrokerSecurity trusted(bool client_certificate = true) {
    idemq::detail::BrokerSecurity security;
    security.tls.ca_file = tls_file("ca.pem");
    if (client_certificate) {
        security.tls.cert_file = tls_file("client.pem");
        security.tls.key_file = tls_file("client.key");
    }
    return security;
}

// The message of the exception connecting throws ("" when it connects).
std::string refusal(const std::string& url, const idemq::detail::BrokerSecurity& security) {
    try {
        idemq::detail::AmqpConnection connection(
            {.url = url, .security = security, .connection_name = "tls test", .timeout = std::chrono::seconds(5)});
        return "";
    } catch (const std::exception& e) {
        return e.what();
    }
}

bool accepts(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
}

// `openssl s_server` with one certificate, on a free port, until destroyed.
class TlsPeer {
public:
    TlsPeer(const std::string& certificate, const std::vector<std::string>& extra = {})
        : port_(test::free_loopback_port()) {
        std::vector<std::string> args{"s_server", "-quiet",
                                      "-accept",  "127.0.0.1:" + std::to_string(port_),
                                      "-cert",    tls_file(certificate + ".pem"),
                                      "-key",     tls_file(certificate + ".key")};
        args.insert(args.end(), extra.begin(), extra.end());
        process_ = std::make_unique<test::Process>("/usr/bin/openssl", args, std::map<std::string, std::string>{});
        REQUIRE_MESSAGE(test::eventually([&] { return accepts(port_); }, std::chrono::seconds(10)), process_->output());
    }
    [[nodiscard]] int port() const { return port_; }

private:
    int port_;
    std::unique_ptr<test::Process> process_;
};

}  // namespace

TEST_CASE("the payments worker books charges over amqps:// and sslmode=verify-full, and its DLQ tools work over TLS") {
    test::PaymentsWorker payments({.start = false});
    const std::map<std::string, std::string> tls_env{{"IDEMQ_AMQP_URL", amqps_url(payments.vhost().url())},
                                                     {"IDEMQ_AMQP_CACERT", tls_file("ca.pem")},
                                                     {"IDEMQ_AMQP_CERT", tls_file("client.pem")},
                                                     {"IDEMQ_AMQP_KEY", tls_file("client.key")},
                                                     {"IDEMQ_DATABASE_URL", verified_database_url(payments.db().url())},
                                                     {"IDEMQ_REQUIRE_TLS", "1"}};
    for (const auto& [key, value] : tls_env) payments.env()[key] = value;
    payments.start();
    payments.wait_consuming();
    payments.publish({{.body = R"({"account": "alice", "amount_cents": 100})", .message_id = "tls-1"},
                      {.body = R"({"account": "bob", "amount_cents": 200})", .message_id = "tls-2"},
                      {.body = "{not json", .message_id = "tls-bad"}});
    payments.wait_booked(2);
    REQUIRE(test::eventually([&] { return payments.broker().ready("payments.charge.dlq") == 1; }));
    // Every session of the worker's is TLS: IDEMQ_REQUIRE_TLS=1 let it use
    // nothing else, and Postgres says so.
    CHECK(payments.db().count("SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                              "WHERE a.datname = current_database() AND a.application_name LIKE 'idemq%' AND s.ssl") >
          0);
    CHECK(payments.db().count(
              "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
              "WHERE a.datname = current_database() AND a.application_name LIKE 'idemq%' AND NOT s.ssl") == 0);

    test::Process list(test::bin("payments-worker"), {"dlq", "list", "--handler", "payments.charge", "--json"},
                       tls_env);
    REQUIRE_MESSAGE(list.wait() == 0, list.output());
    CHECK(list.output().find("tls-bad") != std::string::npos);
    test::Process replay(test::bin("idemqctl"), {"dlq", "replay", "--queue", "payments.charge", "--all"}, tls_env);
    REQUIRE_MESSAGE(replay.wait() == 0, replay.output());
    // Replayed, still malformed, dead-lettered again: the round trip went over TLS.
    REQUIRE(test::eventually([&] { return payments.metric("idemq_dead_lettered_total") == 2; }));
    payments.stop();
}

TEST_CASE("mutual TLS with EXTERNAL login: the client certificate alone, no password anywhere") {
    test::Vhost vhost;
    idemq::detail::BrokerSecurity security = trusted();
    security.auth = idemq::AmqpAuth::external;
    // The URL names neither user nor password: the broker takes the user
    // from the certificate's common name (idemq).
    const std::string url = "amqps://localhost:" + required_env("IDEMQ_SERVICES_AMQPS_PORT") + "/" + vhost.name();
    idemq::detail::AmqpConnection connection({.url = url, .security = security, .connection_name = "tls test"});
    connection.declare_queue("external-login");
    CHECK(connection.inspect_queue("external-login").has_value());

    security.tls.cert_file.clear();
    security.tls.key_file.clear();
    CHECK_THROWS_WITH_AS(
        idemq::detail::AmqpConnection({.url = url, .security = security, .connection_name = "tls test"}),
        doctest::Contains("IDEMQ_AMQP_CERT"), idemq::ConfigError);
}

TEST_CASE("refused, each naming what to fix: a CA, a host name, an expiry, a protocol, a client certificate") {
    test::Vhost vhost;
    const std::string url = amqps_url(vhost.url());
    REQUIRE(refusal(url, trusted()).empty());
    // Blocks, not SUBCASEs: those would set the vhost up again for each.
    {
        INFO("a server certificate from a CA that is not trusted");
        auto security = trusted();
        security.tls.ca_file = tls_file("other-ca.pem");
        const std::string why = refusal(url, security);
        CHECK(why.find("IDEMQ_AMQP_CACERT") != std::string::npos);
        CHECK(why.find("refused") != std::string::npos);
    }
    {
        INFO("a server certificate for another host name");
        const TlsPeer peer("wrong-host");
        const std::string why = refusal(amqps_url(vhost.url(), peer.port()), trusted());
        CHECK(why.find("not valid for host 'localhost'") != std::string::npos);
        CHECK(why.find("wrong.example") != std::string::npos);
        CHECK(why.find("IDEMQ_AMQP_URL") != std::string::npos);
    }
    {
        INFO("an expired server certificate");
        const TlsPeer peer("expired");
        const std::string why = refusal(amqps_url(vhost.url(), peer.port()), trusted());
        CHECK(why.find("certificate has expired") != std::string::npos);
        CHECK(why.find("renewed") != std::string::npos);
    }
    {
        INFO("a server that offers only TLS 1.1");
        const TlsPeer peer("server", {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"});
        const std::string why = refusal(amqps_url(vhost.url(), peer.port()), trusted());
        CHECK(why.find("TLS 1.2") != std::string::npos);
    }
    {
        INFO("no client certificate where the broker requires one");
        const std::string why = refusal(url, trusted(false));
        CHECK(why.find("IDEMQ_AMQP_CERT") != std::string::npos);
    }
    {
        INFO("verification turned off connects anywhere, and IDEMQ_REQUIRE_TLS=1 refuses that");
        auto security = trusted();
        security.tls.ca_file = tls_file("other-ca.pem");
        security.tls.verify = false;
        CHECK(refusal(url, security).empty());
        security.require_tls = true;
        CHECK(refusal(url, security).find("IDEMQ_AMQP_TLS_VERIFY") != std::string::npos);
    }
}

TEST_CASE(
    "IDEMQ_REQUIRE_TLS=1 refuses a plain broker URL and a database URL below verify-full, naming the connection") {
    test::Vhost vhost;
    test::Database db;
    idemq::WorkerOptions options{.amqp_url = amqps_url(vhost.url()),
                                 .database_url = verified_database_url(db.url()),
                                 .amqp_tls = {.ca_file = tls_file("ca.pem"),
                                              .cert_file = tls_file("client.pem"),
                                              .key_file = tls_file("client.key")},
                                 .require_tls = true};
    CHECK_NOTHROW(options.validate());

    auto plain_broker = options;
    plain_broker.amqp_url = vhost.url();
    CHECK_THROWS_WITH_AS(plain_broker.validate(), doctest::Contains("refuses the broker connection"),
                         idemq::ConfigError);
    auto plain_database = options;
    plain_database.database_url = db.url();
    CHECK_THROWS_WITH_AS(plain_database.validate(), doctest::Contains("refuses the database connection"),
                         idemq::ConfigError);
    auto unverified = options;
    unverified.database_url = db.url() + "?sslmode=require";
    CHECK_THROWS_WITH_AS(unverified.validate(), doctest::Contains("sslmode=require"), idemq::ConfigError);

    // The worker binary refuses to start, as a configuration error (exit 2).
    test::Process worker(test::bin("payments-worker"), {"run"},
                         {{"IDEMQ_AMQP_URL", vhost.url()},
                          {"IDEMQ_DATABASE_URL", verified_database_url(db.url())},
                          {"IDEMQ_REQUIRE_TLS", "1"},
                          {"IDEMQ_METRICS_ADDR", ""}});
    CHECK(worker.wait() == 2);
    CHECK(worker.output().find("IDEMQ_REQUIRE_TLS") != std::string::npos);
}
