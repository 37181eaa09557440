// The canary: a RabbitMQ user and a Postgres role whose password holds every
// character that once broke redaction (/ @ : % and a space), real
// payments-worker processes and DLQ tools run with them, through the _FILE
// settings and through flags, and a search for that password, raw and
// percent-encoded, in everything they put out or expose.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <sys/stat.h>
#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "support.hpp"

namespace {

std::string percent_encoded(const std::string& text) {
    std::string out;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        out += std::isalnum(byte) != 0 ? std::string(1, c) : fmt::format("%{:02X}", byte);
    }
    return out;
}

std::string services() {
    const char* value = std::getenv("IDEMQ_SERVICES");
    return value != nullptr && *value != '\0' ? value : std::string(IDEMQ_SOURCE_DIR) + "/scripts/services";
}

std::string shell_output(const std::string& command) {
    FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE_MESSAGE(pipe != nullptr, "cannot run " << command);
    std::string out;
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
    REQUIRE_MESSAGE(::pclose(pipe) == 0, "command failed: " << command << "\n" << out);
    return out;
}

std::string file_content(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// host:port of a scheme://user:password@host:port/path URL.
std::string authority(const std::string& url) {
    const auto start = url.find('@') + 1;
    return url.substr(start, url.find('/', start) - start);
}

// A secret file as a container runtime mounts it: mode 0600, newline at the end.
class SecretFile {
public:
    explicit SecretFile(const std::string& content) : path_(fmt::format("/tmp/{}", test::unique_name("secret"))) {
        std::ofstream(path_) << content << '\n';
        ::chmod(path_.c_str(), 0600);
    }
    ~SecretFile() { std::remove(path_.c_str()); }
    SecretFile(const SecretFile&) = delete;
    SecretFile& operator=(const SecretFile&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

// A vhost and a database, a RabbitMQ user and a Postgres role (owning the
// database) of the same name and with the canary password, and URLs for them.
struct CanaryServices {
    test::Vhost vhost;
    test::Database db;
    std::string user = test::unique_name("canary");
    // Two unique halves around every troublesome character: a leak of any
    // part of the password shows one of them.
    std::string head = test::unique_name("Hd");
    std::string tail = test::unique_name("Tl");
    std::string password = head + "/@:% " + tail;
    std::string amqp_url;
    std::string database_url;

    CanaryServices() {
        const std::string ctl = services() + " ctl";
        (void)shell_output(fmt::format("{} add_user {} '{}' 2>&1", ctl, user, password));
        (void)shell_output(fmt::format("{} set_permissions -p {} {} '.*' '.*' '.*' 2>&1", ctl, vhost.name(), user));
        pqxx::connection admin(test::base_database_url());
        pqxx::nontransaction tx(admin);
        tx.exec("CREATE ROLE " + user + " LOGIN PASSWORD " + tx.quote(password));
        tx.exec("ALTER DATABASE " + db.name() + " OWNER TO " + user);
        amqp_url = url("amqp", test::base_amqp_url(), password, vhost.name());
        database_url = url("postgresql", test::base_database_url(), password, db.name());
    }
    ~CanaryServices() {
        (void)std::system(fmt::format("{} ctl delete_user {} >/dev/null 2>&1", services(), user).c_str());
        try {
            pqxx::connection admin(test::base_database_url());
            pqxx::nontransaction tx(admin);
            tx.exec("DROP DATABASE IF EXISTS " + db.name() + " WITH (FORCE)");
            tx.exec("DROP ROLE IF EXISTS " + user);
        } catch (const std::exception&) {
            // A leftover role is harmless; the services are throwaway.
        }
    }
    CanaryServices(const CanaryServices&) = delete;
    CanaryServices& operator=(const CanaryServices&) = delete;

    [[nodiscard]] std::string url(const std::string& scheme, const std::string& base, const std::string& secret,
                                  const std::string& path) const {
        return fmt::format("{}://{}:{}@{}/{}", scheme, user, percent_encoded(secret), authority(base), path);
    }

    // Fails the test when `text` shows the password or any part of it.
    void check_hidden(const std::string& where, const std::string& text) const {
        for (const auto& form : {password, percent_encoded(password), head, tail}) {
            CHECK_MESSAGE(text.find(form) == std::string::npos, where << " shows the password:\n" << text);
        }
    }

    // The environment of a process that must take its URLs from elsewhere:
    // the test's own IDEMQ_AMQP_URL and IDEMQ_DATABASE_URL are emptied.
    [[nodiscard]] static std::map<std::string, std::string> env(std::map<std::string, std::string> extra) {
        extra.emplace("IDEMQ_AMQP_URL", "");
        extra.emplace("IDEMQ_DATABASE_URL", "");
        return extra;
    }

    // Runs a payments-worker command to its end; returns exit code and output.
    std::pair<int, std::string> run(const std::vector<std::string>& args,
                                    const std::map<std::string, std::string>& extra = {}) const {
        test::Process process(test::bin("payments-worker"), args, env(extra));
        const int code = process.wait();
        const std::string output = process.output();
        check_hidden(fmt::format("the output of payments-worker {}", args.front()), output);
        return {code, output};
    }

    // A worker run with these arguments and environment books three charges
    // and dead-letters one; everything it exposes meanwhile is searched.
    void run_worker(const std::string& label, std::vector<std::string> args, std::map<std::string, std::string> extra,
                    test::Broker& broker) const {
        const int port = test::free_loopback_port();
        extra["IDEMQ_METRICS_ADDR"] = fmt::format("127.0.0.1:{}", port);
        extra["IDEMQ_CONCURRENCY"] = "2";
        args.insert(args.begin(), "run");
        test::Process worker(test::bin("payments-worker"), args, env(extra));
        REQUIRE_MESSAGE(test::eventually([&] { return !worker.running() || broker.consumed("payments.charge"); }),
                        worker.output());
        REQUIRE_MESSAGE(worker.running(), worker.output());
        const long long booked = db.count("SELECT count(*) FROM payments.ledger");
        const std::uint32_t dead = broker.ready("payments.charge.dlq");
        std::vector<test::Outgoing> charges;
        for (int i = 0; i < 3; ++i) {
            charges.push_back({.body = test::charge("A1", 100), .message_id = fmt::format("{}-{}", label, i)});
        }
        charges.push_back({.body = "not json", .message_id = label + "-bad"});
        broker.publish("payments", "charge", charges);
        REQUIRE_MESSAGE(test::eventually([&] {
                            return db.count("SELECT count(*) FROM payments.ledger") == booked + 3 &&
                                   broker.ready("payments.charge.dlq") == dead + 1;
                        }),
                        worker.output());

        std::string cmdline = file_content(fmt::format("/proc/{}/cmdline", worker.pid()));
        std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
        check_hidden(label + ": /proc/PID/cmdline", cmdline);
        if (std::find(args.begin(), args.end(), "--amqp-url") != args.end()) {
            // The flags' passwords were overwritten in place, their lengths kept.
            CHECK_MESSAGE(cmdline.find(user + ":" + std::string(percent_encoded(password).size(), 'x') + "@") !=
                              std::string::npos,
                          cmdline);
        }
        const auto [status, metrics] = test::http_get(port, "/metrics");
        REQUIRE(status == 200);
        check_hidden(label + ": /metrics", metrics);
        const std::string applications =
            db.scalar(fmt::format("SELECT string_agg(application_name, ' | ') FROM pg_stat_activity "
                                  "WHERE usename = '{}'",
                                  user));
        CHECK_MESSAGE(applications.find("idemq") != std::string::npos, applications);
        check_hidden(label + ": pg_stat_activity.application_name", applications);
        const std::string connections =
            shell_output(fmt::format("{} ctl list_connections user client_properties 2>&1", services()));
        CHECK_MESSAGE(connections.find(user) != std::string::npos, connections);
        check_hidden(label + ": the broker's client properties", connections);

        test::stop_gracefully(worker);
        check_hidden(label + ": stdout and stderr", worker.output());
    }
};

}  // namespace

TEST_CASE("a password full of reserved characters appears in nothing the worker or the DLQ tools show") {
    CanaryServices canary;
    const SecretFile amqp_file(canary.amqp_url);
    const SecretFile database_file(canary.database_url);
    const std::map<std::string, std::string> from_files{{"IDEMQ_AMQP_URL_FILE", amqp_file.path()},
                                                        {"IDEMQ_DATABASE_URL_FILE", database_file.path()}};
    REQUIRE(canary.run({"migrate", "--database-url", canary.database_url}).first == 0);
    test::Broker broker(canary.vhost.url());

    canary.run_worker("files", {}, from_files, broker);
    canary.run_worker("flags", {"--amqp-url", canary.amqp_url, "--database-url", canary.database_url}, {}, broker);
    for (const auto& message : broker.peek_all("payments.charge.dlq")) {
        CHECK(test::header(message, "x-idemq-reason") != "");
        canary.check_hidden("a DLQ message's headers", message.properties.to_json().dump());
    }

    // The DLQ tools, through the file and through the flag.
    const auto [listed, list] = canary.run({"dlq", "list", "--handler", "payments.charge", "--json"}, from_files);
    CHECK(listed == 0);
    CHECK(test::occurrences(list, "-bad") == 2);
    const std::string exported = fmt::format("/tmp/{}.jsonl", test::unique_name("canary_export"));
    CHECK(canary
              .run({"dlq", "export", "--handler", "payments.charge", "--all", "--out", exported, "--amqp-url",
                    canary.amqp_url})
              .first == 0);
    const std::string export_text = file_content(exported);
    std::remove(exported.c_str());
    CHECK(export_text.find("files-bad") != std::string::npos);
    CHECK(export_text.find("flags-bad") != std::string::npos);
    canary.check_hidden("a dlq export file", export_text);

    // The error paths print the URLs: a password off by one character, and
    // one not percent-encoded at all.
    const std::string wrong = canary.password + "x";
    CHECK(canary
              .run({"run", "--amqp-url", canary.amqp_url, "--database-url",
                    canary.url("postgresql", test::base_database_url(), wrong, canary.db.name())})
              .first == 1);
    const SecretFile wrong_amqp(canary.url("amqp", test::base_amqp_url(), wrong, canary.vhost.name()));
    CHECK(canary
              .run({"run"},
                   {{"IDEMQ_AMQP_URL_FILE", wrong_amqp.path()}, {"IDEMQ_DATABASE_URL_FILE", database_file.path()}})
              .first == 1);
    const std::string raw_amqp = fmt::format("amqp://{}:{}@{}/{}", canary.user, canary.password,
                                             authority(test::base_amqp_url()), canary.vhost.name());
    const std::string raw_database = fmt::format("postgresql://{}:{}@{}/{}", canary.user, canary.password,
                                                 authority(test::base_database_url()), canary.db.name());
    CHECK(canary.run({"run", "--amqp-url", raw_amqp, "--database-url", canary.database_url}).first == 2);
    CHECK(canary.run({"run", "--amqp-url", canary.amqp_url, "--database-url", raw_database}).first == 2);
    CHECK(canary.run({"migrate", "--database-url", raw_database}).first != 0);
    CHECK(canary.run({"dlq", "list", "--handler", "payments.charge", "--all", "--amqp-url", raw_amqp}).first != 0);
}
