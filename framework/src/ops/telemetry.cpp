#include "ops/telemetry.hpp"

#include <prometheus/text_serializer.h>

#include <map>
#include <sstream>
#include <string_view>

#include "common/failure.hpp"

namespace idemq::detail {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

// Seconds, from 1 ms to 2 minutes: handler work and publish-to-ack latency.
Histogram::BucketBoundaries latency_buckets() {
    return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

}  // namespace

Telemetry::Telemetry(const std::vector<std::string>& handler_names)
    : registry_(std::make_shared<prometheus::Registry>()), names_(handler_names) {
    auto& received = BuildCounter()
                         .Name("idemq_messages_received_total")
                         .Help("Deliveries received from the broker")
                         .Register(*registry_);
    auto& processed = BuildCounter()
                          .Name("idemq_messages_processed_total")
                          .Help("Deliveries whose handler ran and committed")
                          .Register(*registry_);
    auto& duplicates = BuildCounter()
                           .Name("idemq_duplicates_total")
                           .Help("Deliveries acked as duplicates without running the handler")
                           .Register(*registry_);
    auto& conflicts = BuildCounter()
                          .Name("idemq_key_conflicts_total")
                          .Help("Idempotency keys reused with a different body (dead-lettered)")
                          .Register(*registry_);
    auto& retries = BuildCounter()
                        .Name("idemq_retries_scheduled_total")
                        .Help("Retries scheduled, by kind (immediate, delayed)")
                        .Register(*registry_);
    auto& in_doubt = BuildCounter()
                         .Name("idemq_in_doubt_commits_total")
                         .Help("COMMITs whose outcome was unknown (settled by the inbox)")
                         .Register(*registry_);
    auto& released = BuildCounter()
                         .Name("idemq_released_total")
                         .Help("Deliveries returned to the queue untouched (shutdown, pause)")
                         .Register(*registry_);
    auto& crash_loops = BuildCounter()
                            .Name("idemq_crash_loops_total")
                            .Help("Messages dead-lettered because the process died handling them")
                            .Register(*registry_);
    auto& in_flight =
        BuildGauge().Name("idemq_in_flight").Help("Deliveries received and not yet settled").Register(*registry_);
    auto& duration = BuildHistogram()
                         .Name("idemq_handler_duration_seconds")
                         .Help("Time from the start of handling to COMMIT")
                         .Register(*registry_);
    auto& latency = BuildHistogram()
                        .Name("idemq_end_to_end_latency_seconds")
                        .Help("Time from publish (AMQP timestamp, else receipt) to ack")
                        .Register(*registry_);
    auto& batch = BuildHistogram()
                      .Name("idemq_batch_size")
                      .Help("Messages per committed batch transaction (batch handlers)")
                      .Register(*registry_);
    dead_lettered_ = &BuildCounter()
                          .Name("idemq_dead_lettered_total")
                          .Help("Messages dead-lettered, by reason")
                          .Register(*registry_);
    reconnects_ = &BuildCounter()
                       .Name("idemq_reconnects_total")
                       .Help("Reconnections, by component (broker, database)")
                       .Register(*registry_);
    database_pauses_ = &BuildCounter()
                            .Name("idemq_database_pauses_total")
                            .Help("Times consumption paused because Postgres was unreachable")
                            .Register(*registry_)
                            .Add({});
    // Worker-wide, not per handler: one multiple ack can settle deliveries
    // of several handlers. Their ratio is the coalescing of acks.
    acks_sent_ = &BuildCounter()
                      .Name("idemq_acks_sent_total")
                      .Help("basic.ack frames sent (one may settle many deliveries)")
                      .Register(*registry_)
                      .Add({});
    deliveries_acked_ = &BuildCounter()
                             .Name("idemq_deliveries_acked_total")
                             .Help("Deliveries settled by an ack, single or multiple")
                             .Register(*registry_)
                             .Add({});
    outbox_staged_ =
        &BuildCounter()
             .Name("idemq_outbox_staged_total")
             .Help("Outbox rows staged by this process's handlers, counted once their transaction committed")
             .Register(*registry_)
             .Add({});
    outbox_latency_ = &BuildHistogram()
                           .Name("idemq_outbox_publish_latency_seconds")
                           .Help("Time from staging an outbox row to recording its broker confirm (database clock)")
                           .Register(*registry_)
                           .Add({}, latency_buckets());
    outbox_published_ = &BuildCounter()
                             .Name("idemq_outbox_published_total")
                             .Help("Outbox rows the broker confirmed (this process's relay)")
                             .Register(*registry_)
                             .Add({});
    outbox_failures_ = &BuildCounter()
                            .Name("idemq_outbox_publish_failures_total")
                            .Help("Outbox publishes the broker refused (returned, nacked, no such exchange)")
                            .Register(*registry_)
                            .Add({});
    outbox_parked_ = &BuildCounter()
                          .Name("idemq_outbox_parked_total")
                          .Help("Outbox rows parked after their last allowed attempt")
                          .Register(*registry_)
                          .Add({});
    outbox_pending_ = &BuildGauge()
                           .Name("idemq_outbox_pending_rows")
                           .Help("Outbox rows waiting to be published, parked ones not included")
                           .Register(*registry_)
                           .Add({});
    outbox_oldest_ = &BuildGauge()
                          .Name("idemq_outbox_oldest_pending_seconds")
                          .Help("Age of the oldest outbox row waiting to be published")
                          .Register(*registry_)
                          .Add({});
    outbox_parked_rows_ = &BuildGauge()
                               .Name("idemq_outbox_parked_rows")
                               .Help("Outbox rows parked now, waiting for an operator")
                               .Register(*registry_)
                               .Add({});
    outbox_lease_held_ = &BuildGauge()
                              .Name("idemq_outbox_lease_held")
                              .Help("1 while this process's outbox relay holds the outbox's lease, else 0")
                              .Register(*registry_)
                              .Add({});
    outbox_lease_epoch_ = &BuildGauge()
                               .Name("idemq_outbox_lease_epoch")
                               .Help("The lease epoch this process's relay holds (0 while it holds none)")
                               .Register(*registry_)
                               .Add({});
    paused_ = &BuildGauge()
                   .Name("idemq_consumer_paused")
                   .Help("1 while consumption is paused because Postgres is unreachable")
                   .Register(*registry_)
                   .Add({});
    for (const auto& name : names_) {
        const prometheus::Labels labels{{"handler", name}};
        handlers_.push_back(
            {.received = &received.Add(labels),
             .processed = &processed.Add(labels),
             .duplicates = &duplicates.Add(labels),
             .key_conflicts = &conflicts.Add(labels),
             .immediate_retries = &retries.Add({{"handler", name}, {"kind", "immediate"}}),
             .delayed_retries = &retries.Add({{"handler", name}, {"kind", "delayed"}}),
             .in_doubt = &in_doubt.Add(labels),
             .released = &released.Add(labels),
             .crash_loops = &crash_loops.Add(labels),
             .in_flight = &in_flight.Add(labels),
             .handler_duration = &duration.Add(labels, latency_buckets()),
             .end_to_end = &latency.Add(labels, latency_buckets()),
             .batch_size = &batch.Add(labels, Histogram::BucketBoundaries{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000})});
        for (const auto reason : {reason::kPermanentError, reason::kRetriesExhausted, reason::kCrashLoop,
                                  reason::kMissingKey, reason::kBadKey, reason::kKeyConflict, reason::kTooLarge}) {
            // Present from the start at 0, so rate() and alerts see the series.
            dead_lettered_->Add({{"handler", name}, {"reason", std::string(reason)}});
        }
    }
    reconnects_->Add({{"component", "broker"}});
    reconnects_->Add({{"component", "database"}});
}

void Telemetry::received(std::size_t h) { handlers_[h].received->Increment(); }

void Telemetry::processed(std::size_t h, double handler_seconds) {
    handlers_[h].processed->Increment();
    handlers_[h].handler_duration->Observe(handler_seconds);
}

void Telemetry::duplicate(std::size_t h) { handlers_[h].duplicates->Increment(); }

void Telemetry::immediate_retry(std::size_t h) { handlers_[h].immediate_retries->Increment(); }

void Telemetry::delayed_retry(std::size_t h) { handlers_[h].delayed_retries->Increment(); }

void Telemetry::dead_lettered(std::size_t h, const std::string& why) {
    dead_lettered_->Add({{"handler", names_[h]}, {"reason", why}}).Increment();
    if (why == reason::kKeyConflict) handlers_[h].key_conflicts->Increment();
    if (why == reason::kCrashLoop) handlers_[h].crash_loops->Increment();
}

void Telemetry::in_doubt(std::size_t h) { handlers_[h].in_doubt->Increment(); }

void Telemetry::released(std::size_t h) { handlers_[h].released->Increment(); }

void Telemetry::settled(std::size_t h, double end_to_end_seconds) {
    handlers_[h].end_to_end->Observe(end_to_end_seconds);
}

void Telemetry::in_flight(std::size_t h, double count) { handlers_[h].in_flight->Set(count); }

void Telemetry::paused(bool paused) { paused_->Set(paused ? 1 : 0); }

void Telemetry::acks_sent(std::size_t frames, std::size_t deliveries) {
    acks_sent_->Increment(static_cast<double>(frames));
    deliveries_acked_->Increment(static_cast<double>(deliveries));
}

void Telemetry::pause_started() { database_pauses_->Increment(); }

void Telemetry::reconnected(const std::string& component) { reconnects_->Add({{"component", component}}).Increment(); }

void Telemetry::batch_committed(std::size_t h, std::size_t size) {
    handlers_[h].batch_size->Observe(static_cast<double>(size));
}

void Telemetry::outbox_staged(std::size_t rows) { outbox_staged_->Increment(static_cast<double>(rows)); }

void Telemetry::outbox_published(std::size_t rows) { outbox_published_->Increment(static_cast<double>(rows)); }

void Telemetry::outbox_publish_latency(double seconds) { outbox_latency_->Observe(seconds); }

void Telemetry::outbox_failed(std::size_t rows, std::size_t parked) {
    outbox_failures_->Increment(static_cast<double>(rows));
    outbox_parked_->Increment(static_cast<double>(parked));
}

void Telemetry::outbox_backlog(double pending, double oldest_seconds, double parked) {
    outbox_pending_->Set(pending);
    outbox_oldest_->Set(oldest_seconds);
    outbox_parked_rows_->Set(parked);
}

void Telemetry::outbox_lease(std::optional<std::int64_t> epoch) {
    outbox_lease_held_->Set(epoch ? 1 : 0);
    outbox_lease_epoch_->Set(epoch ? static_cast<double>(*epoch) : 0);
}

std::string Telemetry::render() const {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, registry_->Collect());
    return out.str();
}

// Read from the registry, so every count is kept once: /metrics and
// Worker::run()'s result cannot disagree.
WorkerStats Telemetry::stats() const {
    static const std::map<std::string_view, std::uint64_t WorkerStats::*> kSums{
        {"idemq_messages_received_total", &WorkerStats::received},
        {"idemq_messages_processed_total", &WorkerStats::processed},
        {"idemq_duplicates_total", &WorkerStats::duplicates},
        {"idemq_in_doubt_commits_total", &WorkerStats::in_doubt},
        {"idemq_released_total", &WorkerStats::released},
        {"idemq_database_pauses_total", &WorkerStats::database_pauses},
        {"idemq_acks_sent_total", &WorkerStats::acks_sent},
        {"idemq_deliveries_acked_total", &WorkerStats::deliveries_acked},
    };
    const auto label = [](const prometheus::ClientMetric& metric, std::string_view name) {
        for (const auto& l : metric.label) {
            if (l.name == name) return std::string_view(l.value);
        }
        return std::string_view();
    };
    WorkerStats stats;
    for (const auto& family : registry_->Collect()) {
        for (const auto& metric : family.metric) {
            const auto count = static_cast<std::uint64_t>(metric.counter.value);
            if (const auto sum = kSums.find(family.name); sum != kSums.end()) {
                stats.*(sum->second) += count;
            } else if (family.name == "idemq_retries_scheduled_total") {
                (label(metric, "kind") == "immediate" ? stats.immediate_retries : stats.delayed_retries) += count;
            } else if (family.name == "idemq_reconnects_total" && label(metric, "component") == "broker") {
                stats.broker_reconnects += count;
            } else if (family.name == "idemq_dead_lettered_total" && count > 0) {
                stats.dead_lettered[std::string(label(metric, "reason"))] += count;
            } else if (family.name == "idemq_batch_size") {
                stats.batches += metric.histogram.sample_count;
            }
        }
    }
    return stats;
}

}  // namespace idemq::detail
