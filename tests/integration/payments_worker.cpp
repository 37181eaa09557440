#include "payments_worker.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <sstream>

namespace test {
namespace {

// `name{k="v",...} value [timestamp]` or `name value [timestamp]`; false for
// anything else (comments, blank lines).
bool parse_sample(const std::string& line, std::string& name, Labels& labels, double& value) {
    if (line.empty() || line.front() == '#') return false;
    std::size_t at = line.find_first_of("{ ");
    if (at == std::string::npos) return false;
    name = line.substr(0, at);
    labels.clear();
    if (line[at] == '{') {
        ++at;
        while (at < line.size() && line[at] != '}') {
            const auto equals = line.find("=\"", at);
            if (equals == std::string::npos) return false;
            const std::string key = line.substr(at, equals - at);
            std::string text;
            for (at = equals + 2; at < line.size() && line[at] != '"'; ++at) {
                if (line[at] == '\\' && at + 1 < line.size()) {
                    ++at;
                    text += line[at] == 'n' ? '\n' : line[at];
                } else {
                    text += line[at];
                }
            }
            labels[key] = text;
            at = line.find_first_of(",}", at);
            if (at == std::string::npos) return false;
            if (line[at] == ',') ++at;
        }
        ++at;
    }
    try {
        value = std::stod(line.substr(at));
    } catch (const std::exception&) {
        return false;
    }
    return true;
}

}  // namespace

Metrics::Metrics(std::string exposition, std::string counted_handler)
    : text_(std::move(exposition)), counted_handler_(std::move(counted_handler)) {
    std::istringstream lines(text_);
    for (std::string line; std::getline(lines, line);) {
        Sample sample;
        if (parse_sample(line, sample.name, sample.labels, sample.value)) samples_.push_back(std::move(sample));
    }
}

double Metrics::value(const std::string& name, const Labels& asked) const {
    Labels labels = asked;
    if (!counted_handler_.empty() && !labels.contains("handler") &&
        std::any_of(samples_.begin(), samples_.end(),
                    [&](const Sample& s) { return s.name == name && s.labels.contains("handler"); })) {
        labels["handler"] = counted_handler_;
    }
    double sum = 0;
    bool matched = false;
    for (const auto& sample : samples_) {
        if (sample.name != name) continue;
        const bool includes = std::all_of(labels.begin(), labels.end(), [&](const auto& label) {
            const auto it = sample.labels.find(label.first);
            return it != sample.labels.end() && it->second == label.second;
        });
        if (!includes) continue;
        sum += sample.value;
        matched = true;
    }
    if (!matched) {
        std::string wanted;
        for (const auto& [key, value] : labels) wanted += (wanted.empty() ? "" : ",") + key + "=\"" + value + "\"";
        FAIL("no sample " << name << "{" << wanted << "} in\n" << text_);
    }
    return sum;
}

WorkerProcess::WorkerProcess(const std::string& binary, const std::map<std::string, std::string>& env)
    : WorkerProcess(binary, env, free_loopback_port()) {}

WorkerProcess::WorkerProcess(const std::string& binary, std::map<std::string, std::string> env, int port)
    : Process(binary, {"run"},
              [&] {
                  env["IDEMQ_METRICS_ADDR"] = "127.0.0.1:" + std::to_string(port);
                  return env;
              }()),
      port_(port) {}

std::optional<Metrics> WorkerProcess::try_scrape() {
    const auto response = try_http_get(port_, "/metrics");
    if (!response) return std::nullopt;
    REQUIRE_MESSAGE(response->first == 200, "GET /metrics answered " << response->first << ": " << response->second);
    // The worker also runs payments.notify, the receiving end of the outbox
    // chain: what the tests count are the charges.
    return Metrics(response->second, "payments.charge");
}

Metrics WorkerProcess::scrape() {
    auto metrics = try_scrape();
    if (!metrics) {
        FAIL("no /metrics on 127.0.0.1:" << port_ << (running() ? "" : " (the worker exited)") << "; output:\n"
                                         << output());
    }
    return std::move(*metrics);
}

void WorkerProcess::stop() {
    // A worker stopped right after its start may not serve yet.
    REQUIRE_MESSAGE(eventually([&] { return !running() || try_scrape().has_value(); }),
                    "no /metrics on 127.0.0.1:" << port_ << "; output:\n"
                                                << output());
    final_ = scrape();
    stop_gracefully(*this);
}

double WorkerProcess::final_metric(const std::string& name, const Labels& labels) const {
    REQUIRE_MESSAGE(final_.has_value(), "final_metric(" << name << ") before stop()");
    return final_->value(name, labels);
}

PaymentsWorker::PaymentsWorker(PaymentsWorkerOptions options) {
    migrate_payments(db_);
    broker_ = std::make_unique<Broker>(vhost_.url());
    env_ = worker_env(vhost_, db_);
    for (auto& [key, value] : options.env) env_[key] = std::move(value);
    if (options.start) start();
}

WorkerProcess& PaymentsWorker::start() {
    REQUIRE_MESSAGE((!process_ || !process_->running()), "start() while the worker before still runs");
    process_ = std::make_unique<WorkerProcess>(bin("payments-worker"), env_);
    return *process_;
}

std::unique_ptr<WorkerProcess> PaymentsWorker::start_another() const {
    return std::make_unique<WorkerProcess>(bin("payments-worker"), env_);
}

WorkerProcess& PaymentsWorker::process() {
    REQUIRE_MESSAGE(process_ != nullptr, "no worker started");
    return *process_;
}

void PaymentsWorker::wait_consuming() {
    WorkerProcess& worker = process();
    REQUIRE_MESSAGE(eventually([&] {
                        return !worker.running() ||
                               (worker.try_scrape().has_value() && broker_->consumed("payments.charge"));
                    }),
                    "the worker never consumed payments.charge; output:\n"
                        << worker.output());
    REQUIRE_MESSAGE(worker.running(), "the worker exited; output:\n" << worker.output());
}

void PaymentsWorker::wait_booked(long long rows, std::chrono::seconds timeout) {
    REQUIRE_MESSAGE(
        eventually([&] { return ledger_rows() == rows && broker_->ready("payments.charge") == 0; }, timeout),
        "ledger at " << ledger_rows() << " of " << rows << ", " << broker_->ready("payments.charge")
                     << " ready in payments.charge; output:\n"
                     << output());
}

int PaymentsWorker::supervise(const std::vector<Outgoing>& messages, const std::function<bool()>& settled,
                              int max_starts) {
    int deaths = 0;
    bool published = false;
    for (int started = 0; started < max_starts; ++started) {
        WorkerProcess& worker = start();
        if (!published) {
            wait_consuming();
            publish(messages);
            published = true;
        }
        REQUIRE(eventually([&] { return !worker.running() || settled(); }, std::chrono::seconds(30)));
        if (!worker.running()) {
            CHECK(worker.wait() == 128 + SIGABRT);
            ++deaths;
            continue;
        }
        worker.stop();
        break;
    }
    return deaths;
}

}  // namespace test
