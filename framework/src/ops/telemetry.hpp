#pragma once

#include <idemq/worker.hpp>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace idemq::detail {

// Everything a worker counts, in one place and once: the Prometheus metrics
// served on /metrics, from which the WorkerStats returned by Worker::run()
// are read. Thread-safe.
// Handlers are referred to by their registration index.
class Telemetry final {
public:
    explicit Telemetry(const std::vector<std::string>& handler_names);

    void received(std::size_t handler);
    void processed(std::size_t handler, double handler_seconds);
    void duplicate(std::size_t handler);
    void immediate_retry(std::size_t handler);
    void delayed_retry(std::size_t handler);
    void dead_lettered(std::size_t handler, const std::string& reason);
    void in_doubt(std::size_t handler);
    void released(std::size_t handler);
    void settled(std::size_t handler, double end_to_end_seconds);
    // basic.ack frames sent and the deliveries they settled.
    void acks_sent(std::size_t frames, std::size_t deliveries);
    void in_flight(std::size_t handler, double count);
    void paused(bool paused);
    void reconnected(const std::string& component);
    void pause_started();
    void batch_committed(std::size_t handler, std::size_t size);
    // Outbox rows staged by handlers of this process whose transaction is
    // known to have committed.
    void outbox_staged(std::size_t rows);
    // The outbox relay's: rows confirmed by the broker, with how long each
    // took from staging to its confirm being recorded (by the database's
    // clock); refused publishes and how many of those rows were parked; the
    // table now; the lease's epoch while this relay holds it, else nullopt.
    void outbox_published(std::size_t rows);
    void outbox_publish_latency(double seconds);
    void outbox_failed(std::size_t rows, std::size_t parked);
    void outbox_backlog(double pending, double oldest_seconds, double parked);
    void outbox_lease(std::optional<std::int64_t> epoch);

    // The Prometheus text exposition format.
    [[nodiscard]] std::string render() const;
    [[nodiscard]] WorkerStats stats() const;

private:
    struct PerHandler {
        prometheus::Counter* received;
        prometheus::Counter* processed;
        prometheus::Counter* duplicates;
        prometheus::Counter* key_conflicts;
        prometheus::Counter* immediate_retries;
        prometheus::Counter* delayed_retries;
        prometheus::Counter* in_doubt;
        prometheus::Counter* released;
        prometheus::Counter* crash_loops;
        prometheus::Gauge* in_flight;
        prometheus::Histogram* handler_duration;
        prometheus::Histogram* end_to_end;
        prometheus::Histogram* batch_size;
    };

    std::shared_ptr<prometheus::Registry> registry_;
    std::vector<std::string> names_;
    std::vector<PerHandler> handlers_;
    prometheus::Family<prometheus::Counter>* dead_lettered_;
    prometheus::Family<prometheus::Counter>* reconnects_;
    prometheus::Counter* database_pauses_;
    prometheus::Counter* acks_sent_;
    prometheus::Counter* deliveries_acked_;
    prometheus::Counter* outbox_staged_;
    prometheus::Counter* outbox_published_;
    prometheus::Histogram* outbox_latency_;
    prometheus::Counter* outbox_failures_;
    prometheus::Counter* outbox_parked_;
    prometheus::Gauge* outbox_pending_;
    prometheus::Gauge* outbox_oldest_;
    prometheus::Gauge* outbox_parked_rows_;
    prometheus::Gauge* outbox_lease_held_;
    prometheus::Gauge* outbox_lease_epoch_;
    prometheus::Gauge* paused_;
};

}  // namespace idemq::detail
