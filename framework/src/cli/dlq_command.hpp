#pragma once

#include <idemq/handler.hpp>

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

#include "cli/broker_flags.hpp"
#include "cli/dlq_filter.hpp"

namespace idemq::detail {

// `dlq list|show|replay|export|import|purge`, the same for idemqctl and for
// every worker binary. A worker knows its routes, so its `dlq` commands need
// no queue argument. Every command leaves messages it does not act on in
// the DLQ, and acks a DLQ copy only after what replaces it was confirmed by
// the broker or written to disk: killing the tool at any point loses nothing.
class DlqCommand final {
public:
    DlqCommand(CLI::App& parent, std::vector<Route> routes);

    [[nodiscard]] bool parsed() const;
    // Runs the parsed command; returns the exit code. Throws ConfigError for
    // wrong arguments, BrokerError when the broker fails.
    int run();

private:
    void add_common(CLI::App& command);
    void add_filters(CLI::App& command);
    [[nodiscard]] std::string dead_letter_queue() const;
    void require_selection() const;

    int list();
    int show();
    int replay();
    int export_messages();
    int import_messages();
    int purge();

    std::vector<Route> routes_;
    CLI::App* dlq_ = nullptr;
    CLI::App* list_ = nullptr;
    CLI::App* show_ = nullptr;
    CLI::App* replay_ = nullptr;
    CLI::App* export_ = nullptr;
    CLI::App* import_ = nullptr;
    CLI::App* purge_ = nullptr;

    BrokerFlags broker_flags_;
    BrokerTarget broker_;  // resolved by run()
    std::optional<std::string> queue_;
    std::optional<std::string> handler_;
    DlqFilter filter_;
    std::vector<std::string> header_filters_;
    bool json_ = false;
    std::string show_id_;
    std::optional<std::string> to_queue_;
    std::optional<std::size_t> limit_;
    double rate_ = 0;
    bool dry_run_ = false;
    std::string out_file_;
    bool move_ = false;
    std::string in_file_;
    bool yes_ = false;
};

}  // namespace idemq::detail
