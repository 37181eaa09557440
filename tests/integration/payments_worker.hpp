#pragma once

// The payments example as integration and adversarial tests run it: its own
// vhost and migrated database, a broker client, and payments-worker child
// processes whose /metrics the tests read. Assertions read counters there,
// or the database and the queues; a worker's output is for failure messages.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support.hpp"

namespace test {

using Labels = std::map<std::string, std::string>;

// One scrape of /metrics (Prometheus text format).
class Metrics {
public:
    // With `counted_handler`, a metric that has a handler label is read for
    // that handler unless `labels` names another.
    explicit Metrics(std::string exposition, std::string counted_handler = {});
    // The sum over every sample of `name` whose labels include `labels`
    // (every sample of `name` when `labels` is empty). Fails the test when no
    // sample matches: a misspelt name must not read as 0.
    [[nodiscard]] double value(const std::string& name, const Labels& labels = {}) const;
    [[nodiscard]] const std::string& text() const { return text_; }

private:
    struct Sample {
        std::string name;
        Labels labels;
        double value = 0;
    };
    std::string text_;
    std::string counted_handler_;
    std::vector<Sample> samples_;
};

// A worker binary running `run` with `env`, serving /metrics on a port the
// test picked free before starting it, so the port is known, never parsed out
// of a log line.
class WorkerProcess final : public Process {
public:
    WorkerProcess(const std::string& binary, const std::map<std::string, std::string>& env);

    [[nodiscard]] int metrics_port() const { return port_; }
    // GET /metrics now, or nullopt while the endpoint is not up yet.
    [[nodiscard]] std::optional<Metrics> try_scrape();
    // GET /metrics now; fails the test (with the output) when it is not served.
    [[nodiscard]] Metrics scrape();
    [[nodiscard]] double metric(const std::string& name, const Labels& labels = {}) {
        return scrape().value(name, labels);
    }
    // A final scrape, then SIGTERM, and requires exit 0 (see stop_gracefully).
    void stop();
    // A counter as the final scrape of stop() read it.
    [[nodiscard]] double final_metric(const std::string& name, const Labels& labels = {}) const;

private:
    WorkerProcess(const std::string& binary, std::map<std::string, std::string> env, int port);
    int port_;
    std::optional<Metrics> final_;
};

struct PaymentsWorkerOptions {
    // Added to worker_env(), or replacing its values.
    std::map<std::string, std::string> env{};
    // false: the test calls start() when it is ready.
    bool start = true;
};

// A fresh vhost and migrated database for the payments example, a broker
// client on the vhost, and the current payments-worker process.
class PaymentsWorker {
public:
    explicit PaymentsWorker(PaymentsWorkerOptions options = {});

    [[nodiscard]] Database& db() { return db_; }
    [[nodiscard]] Vhost& vhost() { return vhost_; }
    [[nodiscard]] Broker& broker() { return *broker_; }
    // A new client connection: after the broker closed the one before.
    void reconnect_broker() { broker_ = std::make_unique<Broker>(vhost_.url()); }
    // The environment the next start() uses.
    [[nodiscard]] std::map<std::string, std::string>& env() { return env_; }

    // Starts a payments-worker, the current process from now on; the one
    // before must have exited.
    WorkerProcess& start();
    // One more worker on the same queue, run beside the current one.
    [[nodiscard]] std::unique_ptr<WorkerProcess> start_another() const;
    [[nodiscard]] WorkerProcess& process();

    // Waits until the current process serves /metrics and the queue has a
    // consumer (a worker consumes only once its topology is declared).
    void wait_consuming();
    void publish(const std::vector<Outgoing>& messages) { broker_->publish("payments", "charge", messages); }
    [[nodiscard]] double metric(const std::string& name, const Labels& labels = {}) {
        return process().metric(name, labels);
    }
    [[nodiscard]] double final_metric(const std::string& name, const Labels& labels = {}) {
        return process().final_metric(name, labels);
    }
    void stop() { process().stop(); }
    // For failure messages only.
    [[nodiscard]] std::string output() { return process_ ? process_->output() : std::string(); }

    // Waits until payments.ledger has `rows` rows and the queue no ready message.
    void wait_booked(long long rows, std::chrono::seconds timeout = std::chrono::seconds(120));
    // Rows in payments.ledger, -1 while Postgres cannot be reached.
    [[nodiscard]] long long ledger_rows() const { return db_.try_count("SELECT count(*) FROM payments.ledger"); }
    void check_exactly_once(int count, const std::map<std::string, long long>& expected) {
        test::check_exactly_once(db_, *broker_, count, expected);
    }

    // A supervisor for crash tests: starts a worker, and again whenever one
    // dies by abort(), publishing `messages` once the first one consumes,
    // until `settled` holds (then the worker is stopped) or `max_starts`
    // workers ran. Returns how many died.
    int supervise(const std::vector<Outgoing>& messages, const std::function<bool()>& settled, int max_starts = 12);

private:
    Database db_;
    Vhost vhost_;
    std::unique_ptr<Broker> broker_;
    std::map<std::string, std::string> env_;
    std::unique_ptr<WorkerProcess> process_;
};

}  // namespace test
