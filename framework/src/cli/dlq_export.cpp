// `dlq export` and `dlq purge`, the two commands that take messages out of
// the DLQ without publishing them again: export --move once the file is on
// disk (fsynced, renamed, its directory synced), purge at once.
#include <idemq/errors.hpp>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <vector>

#include "amqp/queue_reader.hpp"
#include "amqp/value.hpp"
#include "cli/dlq_command.hpp"
#include "cli/dlq_output.hpp"
#include "common/base64.hpp"

namespace idemq::detail {

int DlqCommand::export_messages() {
    if (move_) require_selection();
    const std::string queue = dead_letter_queue();
    QueueReader reader(broker_.url, broker_.security, queue);
    // Written next to the target and renamed at the end: a killed export
    // never leaves a file that looks complete.
    const std::string temporary = out_file_ + ".partial";
    std::vector<std::uint64_t> exported;
    {
        std::FILE* file = std::fopen(temporary.c_str(), "w");
        if (file == nullptr) throw ConfigError(fmt::format("--out: cannot write '{}'", temporary));
        while (auto delivery = reader.next()) {
            const DeadLetterView view = view_of(*delivery);
            if (!filter_.matches(view)) continue;
            // Every text that came from the wire is written byte-exact: a
            // string when it is UTF-8, else {"$string_base64": ...}.
            const nlohmann::json record = {{"message_id", bytes_to_json(view.message_id)},
                                           {"reason", bytes_to_json(view.reason)},
                                           {"original_exchange", bytes_to_json(view.original_exchange)},
                                           {"original_routing_key", bytes_to_json(view.original_routing_key)},
                                           {"properties", delivery->properties.to_json()},
                                           {"body_base64", base64_encode(delivery->body)}};
            fmt::print(file, "{}\n", dump(record));
            exported.push_back(delivery->delivery_tag);
        }
        const bool written = std::fflush(file) == 0 && fsync(fileno(file)) == 0;
        std::fclose(file);
        if (!written) throw Error(fmt::format("could not write '{}'", temporary));
    }
    std::filesystem::rename(temporary, out_file_);
    if (move_) {
        // The rename itself must survive a power loss before the originals go.
        const auto directory = std::filesystem::absolute(out_file_).parent_path();
        const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY);
        const bool synced = fd >= 0 && fsync(fd) == 0;
        if (fd >= 0) ::close(fd);
        if (!synced) throw Error(fmt::format("could not sync directory '{}'; nothing was removed", directory.string()));
        for (const std::uint64_t tag : exported) reader.ack(tag);
    }
    fmt::print("exported {} message(s) from {} to {}{}\n", exported.size(), queue, out_file_,
               move_ ? " and removed them from the queue" : "");
    return 0;
}

int DlqCommand::purge() {
    require_selection();
    const std::string queue = dead_letter_queue();
    QueueReader reader(broker_.url, broker_.security, queue);
    std::uint64_t removed = 0;
    while (auto delivery = reader.next()) {
        const DeadLetterView view = view_of(*delivery);
        if (!filter_.matches(view)) continue;
        reader.ack(delivery->delivery_tag);
        ++removed;
        fmt::print("removed {} ({}: {})\n", or_dash(view.message_id), or_dash(view.reason), or_dash(view.error));
    }
    fmt::print("purged {} message(s); {} left in {}\n", removed, reader.total() - removed, queue);
    return 0;
}

}  // namespace idemq::detail
