#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <pqxx/binarystring>
#include <pqxx/nontransaction>
#include <pqxx/result>

#include <cstdlib>

#include "amqp/connection.hpp"
#include "amqp/dead_letter_view.hpp"
#include "amqp/idemq_headers.hpp"
#include "amqp/queue_reader.hpp"
#include "amqp/topology.hpp"
#include "commands.hpp"
#include "common/environment_setting.hpp"
#include "common/text.hpp"
#include "core/retry_schedule.hpp"
#include "inbox/database_session.hpp"
#include "inbox/store_sql.hpp"
#include "outbox/outbox_sql.hpp"

namespace idemqctl {
namespace {

using idemq::detail::Delivery;

// Every copy of `message_id` now in `queue`; the queue is left as it was.
std::vector<Delivery> find_in_queue(const idemq::detail::BrokerTarget& broker, const std::string& queue,
                                    const std::string& message_id) {
    std::vector<Delivery> found;
    idemq::detail::QueueReader reader(broker.url, broker.security, queue);
    while (auto delivery = reader.next()) {
        if (delivery->properties.message_id() == message_id) found.push_back(std::move(*delivery));
    }
    return found;
}

bool queue_has_messages(const idemq::detail::BrokerTarget& broker, const std::string& queue) {
    idemq::detail::AmqpConnection connection({.url = broker.url,
                                              .security = broker.security,
                                              .connection_name = "idemqctl trace",
                                              .heartbeat = std::chrono::seconds(0)});
    const auto counts = connection.inspect_queue(queue);
    return counts && counts->messages > 0;
}

}  // namespace

TraceCommand::TraceCommand(CLI::App& parent) {
    if (const char* schema = std::getenv("IDEMQ_SCHEMA")) schema_ = schema;
    command_ =
        parent.add_subcommand("trace", "Where is message X? Inbox, outbox, delay queues, work and dead-letter queues");
    command_->add_option("message-id", message_id_, "message id (or idempotency key)")->required();
    command_->add_option("--queue", queues_, "a handler's work queue: its <queue>.dlq is searched (repeatable)");
    command_->add_option("--database-url", database_url_, "Postgres URL (default: IDEMQ_DATABASE_URL)");
    broker_flags_.add_to(*command_);
    command_->add_option("--schema", schema_, "schema of idemq's tables (default: IDEMQ_SCHEMA or idemq)");
}

int TraceCommand::run() {
    if (database_url_.empty())
        database_url_ = idemq::detail::setting_from_environment("IDEMQ_DATABASE_URL").value_or("");
    if (database_url_.empty()) throw idemq::ConfigError("IDEMQ_DATABASE_URL (or --database-url) is not set");
    const idemq::detail::BrokerTarget broker = broker_flags_.resolve();
    int places = 0;

    auto connection = idemq::detail::open_database(database_url_, "idemqctl trace");
    pqxx::nontransaction tx(*connection);
    const std::string schema = idemq::detail::quote_identifier(schema_);
    // Keys and ids are bytea: the id is looked up byte for byte, and shown
    // with its odd bytes escaped.
    const pqxx::binarystring id(message_id_.data(), message_id_.size());
    for (const auto& row : tx.exec_params(
             fmt::format("SELECT handler, idempotency_key, message_id, to_char(received_at AT TIME ZONE 'UTC', "
                         "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), encode(body_sha256, 'hex') FROM {}.inbox "
                         "WHERE message_id = $1 OR idempotency_key = $1 ORDER BY received_at",
                         schema),
             id)) {
        ++places;
        fmt::print("inbox: processed by handler '{}' at {} (key '{}', message id '{}', body sha256 {})\n",
                   row[0].as<std::string>(), row[3].as<std::string>(),
                   idemq::detail::printable(pqxx::binarystring(row[1]).str()),
                   idemq::detail::printable(pqxx::binarystring(row[2]).str()), row[4].as<std::string>());
    }
    for (const auto& row : tx.exec_params(fmt::format("SELECT handler, deliveries FROM {} WHERE message_id = $1",
                                                      idemq::detail::handling_started_table(schema_)),
                                          id)) {
        fmt::print("crash-loop guard: handler '{}' started it {} time(s) without finishing\n", row[0].as<std::string>(),
                   row[1].as<int>());
    }

    // Staged by a handler or other code: waiting for the relay, or published.
    const auto text = [](const pqxx::field& bytes) {
        return idemq::detail::printable(pqxx::binarystring(bytes).str());
    };
    for (const auto& row : tx.exec_params(idemq::detail::outbox_trace_pending_sql(schema_), id)) {
        ++places;
        const std::string error = row[6].as<std::string>();
        fmt::print("outbox: row {} {} after {} attempt(s), to exchange '{}' routing key '{}', staged at {}{}\n",
                   row[0].as<long long>(), row[1].as<std::string>(), row[2].as<int>(), text(row[4]), text(row[5]),
                   row[3].as<std::string>(), error.empty() ? "" : fmt::format(" (last error: {})", error));
    }
    for (const auto& row : tx.exec_params(idemq::detail::outbox_trace_published_sql(schema_), id)) {
        ++places;
        fmt::print(
            "outbox: row {} published at {} by relay '{}' in epoch {} after {} attempt(s), to exchange '{}' "
            "routing key '{}'\n",
            row[0].as<long long>(), row[1].as<std::string>(), row[2].as<std::string>(), row[3].as<long long>(),
            row[4].as<int>(), text(row[5]), text(row[6]));
    }

    // Delay queues double from 250 ms; any worker's are among these.
    for (const auto tier : idemq::detail::delay_tiers(std::chrono::hours(24 * 30))) {
        const std::string queue = idemq::detail::tier_name(tier);
        if (!queue_has_messages(broker, queue)) continue;
        for (const auto& delivery : find_in_queue(broker, queue, message_id_)) {
            ++places;
            const auto view = idemq::detail::view_of(delivery);
            const auto attempt = delivery.properties.int_header(idemq::detail::header::kAttempt).value_or(0);
            const auto due = delivery.properties.int_header(idemq::detail::header::kNotBefore).value_or(0);
            fmt::print("retry: waiting in {} for attempt {} of queue '{}' (due at Unix ms {}; last error: {})\n", queue,
                       attempt, delivery.routing_key, due,
                       view.headers.count(idemq::detail::header::kLastError)
                           ? view.headers.find(idemq::detail::header::kLastError)->second
                           : "-");
        }
    }

    for (const auto& name : queues_) {
        // Only the dead-letter queue is read: reading a live work queue would
        // take its backlog away from the workers for the time of the scan.
        const std::string queue = name.ends_with(".dlq") ? name : idemq::detail::dead_letter_queue_name(name);
        if (!queue_has_messages(broker, queue)) continue;
        for (const auto& delivery : find_in_queue(broker, queue, message_id_)) {
            ++places;
            const auto view = idemq::detail::view_of(delivery);
            fmt::print("dlq: in {} with reason {} ({}: {}), failed at {} after {} attempt(s)\n", queue, view.reason,
                       view.error_type, view.error, view.failed_at, view.attempts);
        }
    }
    if (places == 0) {
        fmt::print("'{}' was not found in the inbox, the outbox, the delay queues{}\n", message_id_,
                   queues_.empty() ? " (add --queue to search work and dead-letter queues)" : " or the given queues");
        return 1;
    }
    return 0;
}

}  // namespace idemqctl
