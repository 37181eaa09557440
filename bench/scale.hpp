#pragma once

// The scenarios at scale, run only when named (each takes minutes): a soak of
// one worker, a soak of `dlq replay`, and throughput over a large inbox.

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>

namespace bench {

// 9: `count` charges published at `rate` per second through one worker
// (`concurrency` handler threads) in this process; its RSS sampled each
// second.
nlohmann::json soak(std::size_t count, double rate, int concurrency);

// 10: `count` dead letters replayed by `worker_binary dlq replay --all` to a
// queue this process drains; the replaying process's RSS sampled each
// second.
nlohmann::json dlq_replay_soak(std::size_t count, const std::string& worker_binary);

// 11: `count` charges per message and in batches of 100 over an inbox of
// `rows` rows (generated in the database) and over an empty one.
nlohmann::json large_inbox(std::size_t rows, std::size_t count, int concurrency);

}  // namespace bench
