#include "inbox/retention.hpp"

#include <fmt/format.h>
#include <pqxx/transaction>

#include <thread>

#include "common/log.hpp"
#include "common/stoppable_sleep.hpp"
#include "common/text.hpp"
#include "inbox/database_session.hpp"
#include "inbox/store_sql.hpp"

namespace idemq::detail {

std::string aged_rows_delete_sql(std::string_view schema, std::string_view table, std::string_view time_column) {
    return fmt::format(
        "DELETE FROM {0}.{1} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {0}.{1} "
        "WHERE {2} < now() - make_interval(secs => $1) LIMIT $2 FOR UPDATE SKIP LOCKED))",
        quote_identifier(schema), quote_identifier(table), quote_identifier(time_column));
}

std::size_t delete_aged_batch(pqxx::connection& connection, const std::string& delete_sql,
                              std::chrono::seconds older_than, std::size_t batch) {
    pqxx::work tx(connection);
    const pqxx::result result =
        tx.exec_params(delete_sql, static_cast<double>(older_than.count()), static_cast<long long>(batch));
    tx.commit();
    return static_cast<std::size_t>(result.affected_rows());
}

std::size_t prune_inbox(pqxx::connection& connection, std::string_view schema, std::chrono::seconds older_than,
                        std::size_t batch, std::chrono::milliseconds pause, const std::stop_token& stop) {
    const std::string inbox_sql = aged_rows_delete_sql(schema, "inbox", "received_at");
    const std::string marks_sql =
        fmt::format("DELETE FROM {0}.handling_started WHERE last_started_at < now() - make_interval(secs => $1)",
                    quote_identifier(schema));
    std::size_t deleted = 0;
    for (;;) {
        const std::size_t batch_deleted = delete_aged_batch(connection, inbox_sql, older_than, batch);
        deleted += batch_deleted;
        if (batch_deleted < batch) break;
        if (!sleep_unless_stopped(pause, stop)) return deleted;
    }
    pqxx::work tx(connection);
    tx.exec_params(marks_sql, static_cast<double>(older_than.count()));
    tx.commit();
    return deleted;
}

InboxPruner::InboxPruner(const WorkerOptions& options)
    : task_(options.inbox_prune_interval,
            [&options, connection = std::shared_ptr<pqxx::connection>()](const std::stop_token& stop) mutable {
                try {
                    if (!connection) connection = open_database(options.database_url, "idemq inbox pruner");
                    const std::size_t deleted = prune_inbox(*connection, options.schema, options.inbox_retention, 1000,
                                                            std::chrono::milliseconds(20), stop);
                    if (deleted > 0) {
                        log().info("pruned {} inbox rows older than {} s", deleted, options.inbox_retention.count());
                    }
                } catch (const std::exception& e) {
                    connection.reset();
                    log().warn("inbox pruning failed, will try again: {}", first_line(e.what()));
                }
            }) {}

}  // namespace idemq::detail
