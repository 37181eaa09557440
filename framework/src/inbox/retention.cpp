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

std::size_t prune_inbox(pqxx::connection& connection, std::string_view schema, std::chrono::seconds older_than,
                        std::size_t batch, std::chrono::milliseconds pause, const std::stop_token& stop) {
    const std::string quoted = quote_identifier(schema);
    // Batches of ctids: the received_at index finds candidates, and no more
    // than `batch` rows are scanned or locked at once.
    const std::string inbox_sql = fmt::format(
        "DELETE FROM {0}.inbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM {0}.inbox "
        "WHERE received_at < now() - make_interval(secs => $1) LIMIT $2 FOR UPDATE SKIP LOCKED))",
        quoted);
    const std::string marks_sql = fmt::format(
        "DELETE FROM {0}.handling_started WHERE last_started_at < now() - make_interval(secs => $1)", quoted);
    std::size_t deleted = 0;
    for (;;) {
        pqxx::work tx(connection);
        const pqxx::result result =
            tx.exec_params(inbox_sql, static_cast<double>(older_than.count()), static_cast<long long>(batch));
        tx.commit();
        deleted += static_cast<std::size_t>(result.affected_rows());
        if (static_cast<std::size_t>(result.affected_rows()) < batch) break;
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
